"""Draw docs/architecture.png: Gingham's layers as pyproject.toml's import contract lists them (top to bottom,
siblings side by side), each folder with its modules, and an arrow from each folder to every folder it imports
from (read from the code's import statements, function-level imports included).

    python docs/draw_architecture.py [--out docs/architecture.png]

Needs matplotlib (the bench extra) and Python 3.11+ (tomllib). Every arrow points down: an upward one would be an
import the contract forbids, and is drawn red.
"""

from __future__ import annotations

import argparse
import ast
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layers() -> list[list[str]]:
    """The layers contract's rows, top first; each a list of sibling packages (``gingham.x``)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c["type"] == "layers")
    rows = [[p.strip() for p in row.replace(":", "|").split("|")] for row in contract["layers"]]
    return rows + [["gingham.kernels"]]  # the bottom layer, outside engine/ (tests/packaging/test_layers.py checks it)


def modules() -> dict[str, Path]:
    out = {}
    for top, package in ((ROOT / "engine", "gingham"), (ROOT / "kernels", "gingham.kernels")):
        for path in sorted(top.rglob("*.py")):
            parts = [package, *path.relative_to(top).with_suffix("").parts]
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(name: str, path: Path) -> set[str]:
    """Gingham modules (or names in them) that module ``name`` imports."""
    found = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("gingham"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                target = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("gingham"):
                found.update(f"{target}.{a.name}" for a in node.names)
    return found


def owner(module: str, boxes: list[str]) -> str | None:
    """The box (package) a module or name belongs to; None for the package root and ``gingham._version``."""
    best = [b for b in boxes if module == b or module.startswith(b + ".")]
    return max(best, key=len) if best else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "architecture.png"))
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    rows = layers()
    boxes = [b for row in rows for b in row]
    level = {b: i for i, row in enumerate(rows) for b in row}
    mods = modules()
    edges: Counter = Counter()
    for name, path in mods.items():
        src = owner(name, boxes)
        for target in imports(name, path):
            dst = owner(target, boxes)
            if src and dst and src != dst:
                edges[src, dst] += 1

    width, row_h, box_h = 14.0, 1.55, 1.05
    fig, ax = plt.subplots(figsize=(width, row_h * len(rows) + 0.6))
    ax.set_xlim(0, width)
    ax.set_ylim(-0.2, row_h * len(rows) + 0.2)
    ax.axis("off")
    centre = {}
    for i, row in enumerate(rows):
        y = row_h * (len(rows) - i) - row_h / 2
        w = (width - 0.6) / len(row)
        for j, box in enumerate(row):
            x = 0.3 + j * w
            ax.add_patch(FancyBboxPatch((x + 0.15, y - box_h / 2), w - 0.3, box_h, boxstyle="round,pad=0.02",
                                        facecolor="#eef3fb", edgecolor="#3a5a8c", linewidth=1.2))
            files = sorted({m.split(".")[len(box.split("."))] for m in mods
                            if m.startswith(box + ".") and len(m.split(".")) > len(box.split("."))})
            label = box.replace("gingham.", "") + ("/" if any(m.startswith(box + ".") for m in mods) else ".py")
            ax.text(x + w / 2, y + box_h / 2 - 0.2, label, ha="center", va="center", fontsize=11, weight="bold")
            text, line = [], ""
            for f in files:
                if len(line) + len(f) > max(18, int(w * 9)):
                    text.append(line)
                    line = ""
                line += ("" if not line else ", ") + f
            text.append(line)
            ax.text(x + w / 2, y - 0.12, "\n".join(t for t in text if t), ha="center", va="center", fontsize=6.5,
                    color="#333333")
            centre[box] = (x + w / 2, y)
    for (src, dst), n in sorted(edges.items()):
        (x0, y0), (x1, y1) = centre[src], centre[dst]
        up = level[dst] < level[src]
        same = level[dst] == level[src]
        colour = "#c0392b" if up or same else "#7f8c8d"
        start = (x0, y0 - box_h / 2) if not up else (x0, y0 + box_h / 2)
        end = (x1, y1 + box_h / 2) if not up else (x1, y1 - box_h / 2)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=8, color=colour, linewidth=0.6,
                                     alpha=0.55, connectionstyle="arc3,rad=0.08"))
    n_up = sum(1 for (s, d) in edges if level[d] <= level[s])
    ax.set_title(f"Gingham's layers (pyproject.toml's import contract, top to bottom): {len(edges)} arrows "
                 f"(a folder imports from another), {n_up} upward or sideways", fontsize=11)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}: {len(boxes)} folders, {len(edges)} arrows, {n_up} upward")


if __name__ == "__main__":
    main()
