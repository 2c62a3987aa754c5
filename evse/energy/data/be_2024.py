"""Day-ahead prices of the Belgian bidding zone, four real days of 2024 (EUR/kWh, hourly).

Source: ENTSO-E Transparency Platform, "Day-ahead prices" (document type A44), bidding zone BE,
60-minute resolution, as compiled in the public dataset DAM_prices.csv of the GitHub repository
RigauxBaptiste/The_Proof_of_the_Pudding_is_in_the_Heating (values converted there from EUR/MWh
to EUR/kWh; rounded here to 5 decimals).

Hour i of a day starts at local midnight (Europe/Brussels: CET in March, CEST in June) plus i
hours. These are wholesale prices: evse.energy.tariff adds grid fees, taxes and the export
contract explicitly. `evse demo --day` plays 2024-06-14 evening to 2024-06-15 morning.
"""

UTC_OFFSET_H = {"2024-03-20": 1, "2024-03-21": 1, "2024-06-14": 2, "2024-06-15": 2}

DAYS: dict[str, tuple[float, ...]] = {
    "2024-03-20": (
        0.07601, 0.07044, 0.06576, 0.05881, 0.06000, 0.06677, 0.09330, 0.10315,
        0.09892, 0.07084, 0.06175, 0.05718, 0.06248, 0.06549, 0.05909, 0.06408,
        0.07127, 0.09786, 0.14485, 0.14156, 0.11515, 0.09938, 0.08290, 0.07892,
    ),
    "2024-03-21": (
        0.07043, 0.07000, 0.06472, 0.05456, 0.04586, 0.04680, 0.06582, 0.08907,
        0.10110, 0.08042, 0.07241, 0.06334, 0.06215, 0.05398, 0.05443, 0.04473,
        0.05344, 0.07113, 0.10108, 0.11541, 0.09131, 0.06971, 0.06140, 0.05212,
    ),
    "2024-06-14": (
        0.05874, 0.04834, 0.04415, 0.04265, 0.03999, 0.04325, 0.06037, 0.08436,
        0.09150, 0.08508, 0.06180, 0.05225, 0.04447, 0.03399, 0.02900, 0.02920,
        0.03946, 0.05222, 0.06464, 0.09133, 0.12857, 0.12352, 0.09791, 0.06419,
    ),
    "2024-06-15": (
        0.11000, 0.09208, 0.07772, 0.02824, -0.02140, -0.01042, 0.00154, 0.00009,
        0.00000, -0.00006, -0.01008, -0.02895, -0.04482, -0.06547, -0.08002, -0.05610,
        -0.02889, -0.00377, 0.00000, 0.01482, 0.03838, 0.03920, 0.05360, 0.04104,
    ),
}
