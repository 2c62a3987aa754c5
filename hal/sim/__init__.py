"""SIL physics behind the `sim` HAL backend: EV battery, DC power stage, contactor, IMD.

Production code, because `sim` is a legitimate backend chosen by name in the configuration
(DESIGN.md import rule 4: `hal` never imports `simulators`). The simulators (EV, MCU, CAN
modules) import these models from here.
"""
