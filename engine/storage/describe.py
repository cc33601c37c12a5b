"""What :meth:`gingham.Index.info` reports about a committed generation: counts, sizes, configs, codebook health
and what calibration measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from gingham.storage.segment import Snapshot
from gingham.storage.writes import codebook_drift


def describe(snap: Snapshot, path: Path) -> dict[str, Any]:
    """Counts, sizes, configs and codebook health of ``snap``, as committed plus sizes measured on disk."""
    manifest, codec = snap.manifest, snap.codec
    compressed = sum(s.stored.codes.nbytes + s.stored.residuals.nbytes for s in snap.segments)
    total = sum(f["bytes"] for f in manifest["files"].values())
    n_tokens = max(1, snap.n_tokens)
    return {
        "path": str(path),
        "format_version": manifest["format_version"],
        "engine_version": manifest["engine_version"],
        "generation": snap.generation,
        "n_docs": snap.n_live,
        "n_deleted": snap.n_positions - snap.n_live,
        "n_segments": len(snap.segments),
        "n_tokens": snap.n_tokens,
        "dim": codec.dim,
        "nbits": codec.nbits,
        "n_centroids": codec.n_centroids,
        "sub_centroids_per_centroid": 1 << codec.sub_bits,
        "coarse_centroids": 0 if codec.coarse is None else len(codec.coarse),
        "assign_nprobe": codec.assign_nprobe,
        "residual_quantizer": {**(manifest.get("residual_quantizer") or {}),
                               "kind": "buckets" if codec.codewords is None else "product"},
        "codes_dtype": manifest["codes_dtype"],
        "bytes_per_token_compressed": compressed / n_tokens,
        "bytes_per_token_on_disk": total / n_tokens,
        "bytes_on_disk": total,
        "codebook_drift": codebook_drift(manifest),
        "build_config": manifest["build_config"],
        "search_defaults": manifest.get("search_defaults", {}),
        "calibration": calibration_summary(manifest.get("calibration")),
        "created": manifest.get("created"),
    }


def calibration_summary(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What calibration measured: per top_k the chosen settings and their recall."""
    if not record:
        return None
    out = {k: record[k] for k in ("source", "n_queries", "target", "seed", "n_docs", "skipped", "cost_cap")
           if k in record}
    out["chosen"] = {k: {**v, "recall": record["measured"][k][-1]["recall"],
                         "rungs_tried": len(record["measured"][k]),
                         **({"capped": True} if k in record.get("capped", ()) else {})}
                     for k, v in record.get("settings", {}).items()}
    return out
