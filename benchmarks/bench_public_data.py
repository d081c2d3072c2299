"""Published preference data: import throughput (HH-RLHF-style rows -> items + labels, one transaction),
TRL-form export throughput, and Krippendorff's alpha time against the `krippendorff` package.

    python benchmarks/bench_public_data.py            # 20,000 rows
    python benchmarks/bench_public_data.py --rows 2000

The rows are generated here (no download): two-turn HH-RLHF transcripts sharing their prompt. Import and
export are bound by SQLite and JSON, not arithmetic, so no fraction of the GEMM peak is reported for them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import machine_report  # noqa: E402

from workbench.preferences.agreement import krippendorff_alpha  # noqa: E402
from workbench.preferences.labels import LabelStore  # noqa: E402


def hh_rows(n: int, rng: np.random.Generator) -> list[dict]:
    rows = []
    for i in range(n):
        prompt = f"\n\nHuman: question {i} about {rng.integers(1000)}?\n\nAssistant:"
        rows.append({"chosen": prompt + f" a helpful answer number {i}.", "rejected": prompt + f" no ({i})."})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    machine_report()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hh.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in hh_rows(args.rows, rng)))
        store = LabelStore(Path(tmp) / "store")
        t0 = time.perf_counter()
        report = store.import_public(path, "hh")
        t_import = time.perf_counter() - t0
        t0 = time.perf_counter()
        n = store.export_trl("hh", Path(tmp) / "trl.jsonl")
        t_jsonl = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.export_trl("hh", Path(tmp) / "trl.parquet")
        t_parquet = time.perf_counter() - t0
    print(f"import {report['rows']} HH-RLHF rows: {t_import:.2f} s ({report['rows'] / t_import:,.0f} rows/s)")
    print(f"TRL export JSONL {n} rows: {t_jsonl:.2f} s ({n / t_jsonl:,.0f} rows/s); "
          f"Parquet: {t_parquet:.2f} s ({n / t_parquet:,.0f} rows/s)")

    # Krippendorff's alpha: 5,000 items, 10 labelers, ~3 answers per item on the 7-point scale.
    units, labelers = 5000, 10
    data = np.full((labelers, units), np.nan)
    records = []
    for u in range(units):
        for lab in rng.choice(labelers, 3, replace=False):
            v = int(rng.integers(-3, 4))
            data[lab, u] = v
            records.append((u, f"L{lab}", v))
    t0 = time.perf_counter()
    ours = krippendorff_alpha(records, "ordinal")
    t_ours = time.perf_counter() - t0
    try:
        import krippendorff

        t0 = time.perf_counter()
        ref = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
        t_ref = time.perf_counter() - t0
        print(f"Krippendorff's alpha (ordinal, {len(records)} answers): {t_ours * 1e3:.1f} ms here, "
              f"{t_ref * 1e3:.1f} ms in the krippendorff package; |difference| = {abs(ours - ref):.1e}")
    except ImportError:
        print(f"Krippendorff's alpha (ordinal, {len(records)} answers): {t_ours * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
