"""After-the-run analysis: statistics (`stats`, numpy only) and plots (`plots`, matplotlib).

Imported by the results layer and notebooks, never by `vmsim.sim`.
"""
