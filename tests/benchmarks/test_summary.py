"""benchmarks/summary.py reads the sweep benchmark's output into rows beside their goals."""

from __future__ import annotations

from tests.benchmarks.scripts import load_script

# benchmarks/sweep.py's output (--size 32 --n-images 20), PSPNet only
SWEEP_OUTPUT = """\
CPU: AMD EPYC, torch 2.14.1+cu130, 2 threads, native bf16: True; 20 images 32x32, batch 64; malloc: freed memory kept

pspnet {}: R = 127 replacements + baseline
  ideal of prefix reuse: FLOPs  1.41x; measured seconds  1.39x (memory-bound work counted)
  naive: deepcopy + load + evaluate     49.1 s (cpu    48.2 s)
  (R+1) full passes, extrapolated       61.6 s (cpu    61.1 s)
  prefix reuse, naive numerics           19.6 s (cpu    19.3 s):  2.51x naive (cpu  2.50x),  3.14x full passes =  223 % of the FLOP ideal (cpu  225 %),  227 % of the seconds ideal
  prefix + fold_bn+channels_last         25.4 s (cpu    25.0 s):  1.93x naive (cpu  1.93x),  2.42x full passes =  172 % of the FLOP ideal (cpu  173 %),  175 % of the seconds ideal
  prefix + fold_bn+channels_last+bf16    11.4 s (cpu    11.0 s):  4.31x naive (cpu  4.37x),  5.40x full passes =  383 % of the FLOP ideal (cpu  393 %),  390 % of the seconds ideal
  prefix rows bit-identical to naive: True
  prefix + fold_bn+channels_last: max |Dice - naive| = 2.80e-04
  prefix + fold_bn+channels_last+bf16: max |Dice - naive| = 1.53e-02
"""


def test_every_sweep_variant_gets_its_speed_up_and_its_dice_difference():
    summary = load_script("summary")
    ratios = summary.parse_sweep(SWEEP_OUTPUT)
    speed = {r.measured: r.ratio for r in ratios if r.benchmark == "sweep speed-up"}
    assert speed == {
        "prefix reuse, naive numerics": "2.51x",
        "prefix + fold_bn+channels_last": "1.93x",
        "prefix + fold_bn+channels_last+bf16": "4.31x",
    }
    assert {r.goal for r in ratios if r.benchmark == "sweep speed-up"} == {">= 2.5x"}
    exactness = {r.measured: r.ratio for r in ratios if r.benchmark == "sweep exactness"}
    assert exactness == {
        "prefix reuse Dice": "bit-identical: True",
        "prefix + fold_bn+channels_last Dice": "max |dDice| 2.80e-04",
        "prefix + fold_bn+channels_last+bf16 Dice": "max |dDice| 1.53e-02",
    }
    assert all(r.network == "pspnet (R = 127)" for r in ratios)
    assert summary._threads(SWEEP_OUTPUT) == 2
