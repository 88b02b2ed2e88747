"""planner benchmarks: every figure is a ratio against its floor, measured in the same run.

    python3 bench/run.py [--quick] [--json FILE] [--rows 1,2,3,4,5] [--uri URI]

Rows (see issue 7), one module each, each returning a :class:`bench.harness.Row`:
  1  throughput.py   relayout throughput, in process, over a corpus  vs lxml parse + serialize
  2  cli_latency.py  `planner relayout FILE`, the console script installed in a venv, as a
                     whole process  vs python -c 'lxml parse + serialize FILE' in the same venv
  3  scale.py        topology read + plan, whole relayout, generated domains of 10-1,000 devices
  4  hotplug.py      `planner hotplug` of a NIC into a running TCG domain vs `virsh
                     attach-device --live --config` of the same XML at the same address;
                     in-process overhead (XMLDesc reads + planning)
  5  memory.py       peak memory of relayout on the largest document  vs lxml parse + serialize

harness.py times and formats (planner and floor alternate, ABAB.../BABA..., so a machine that
other work slows down slows both; the ratio is the median of the per-pair ratios, and the
times are medians), corpus.py holds the documents, install.py the venvs, machine.py the
versions, main.py the command; gen.py generates the scale row's domains. Documents the
planner does not support (UnsupportedError) are skipped and counted.
"""
