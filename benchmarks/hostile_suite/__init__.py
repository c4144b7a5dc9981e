"""The hostile-load suite behind ``benchmarks/hostile.py`` (issue 8, item 7).

- :mod:`.server`: start ``trio-search-server`` as a subprocess and watch it
  (RSS, CPU seconds, bytes of log, whether it still answers);
- :mod:`.wire`: request bytes and response reading, on Trio streams;
- :mod:`.ordinary`: the ordinary clients whose latency is the measure;
- :mod:`.shutdown`, :mod:`.memory`, :mod:`.floods`, :mod:`.regressions`:
  the attacks, one small function each;
- :mod:`.report`: HOSTILE.md and hostile.json.

Everything talks to 127.0.0.1 only, and every loop is bounded in count and
time.
"""
