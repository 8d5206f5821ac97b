"""statsmodels' Holt model on the series streamsql's FORECAST was given: the reference its tests
compare with.

Reads a JSON list of {"values": [...], "h": n, "alpha": a or null, "beta": b or null} on stdin
and writes a JSON list of {"forecast": [...], "sse": x} (or {"error": "..."} where statsmodels
cannot fit the series) in the same order. Without alpha and beta the smoothing parameters are
fitted (Holt(...).fit()); with them they are used as given. The start is the 'legacy-heuristic'
one, as FORECAST's.
"""

import json
import sys
import warnings

from statsmodels.tsa.holtwinters import Holt

warnings.simplefilter("ignore")

answers = []
for case in json.load(sys.stdin):
    try:
        model = Holt(case["values"], initialization_method="legacy-heuristic")
        if case.get("alpha") is None:
            fit = model.fit()
        else:
            fit = model.fit(smoothing_level=case["alpha"], smoothing_trend=case["beta"], optimized=False)
        answers.append({"forecast": [float(x) for x in fit.forecast(case["h"])], "sse": float(fit.sse)})
    except Exception as error:  # noqa: BLE001 - reported to the test, which decides
        answers.append({"error": repr(error)})
json.dump(answers, sys.stdout)
