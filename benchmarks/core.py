"""Core performance benchmarks for NeuroMANCER: import cost, symbolic build time, Trainer overhead.

Run ``python benchmarks/core.py`` from the repository root. Every figure is measured in the same
run and reported as a ratio or against a goal, so the numbers compare like with like on whatever
machine runs it:

- ``import neuromancer`` (and the modeling layer plus `Trainer`) over ``import torch``, each in a
  fresh interpreter, median of several repeats; and which heavy optional packages got imported.
- time to build the portfolio objective ``sum(cov[i, j] * x[:, i] * x[:, j])`` for growing n.
- `Trainer` time per epoch on the parametric Rosenbrock problem over a hand-written PyTorch loop
  doing the same work (same model, data, Adam, clipping, and a dev pass per epoch).

The table is printed and written as Markdown to ``benchmarks/results/core.md`` for the docs.
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "core.md"
HEAVY_MODULES = ("lightning", "wandb", "cvxpy", "scipy", "matplotlib")
MODELING_LAYER = ("import neuromancer.constraint, neuromancer.loss, neuromancer.problem, neuromancer.system, "
                  "neuromancer.dataset, neuromancer.modules.blocks, neuromancer.trainer")
PORTFOLIO_SIZES = (5, 10, 20, 40)


@dataclass
class Row:
    """One line of the results table."""

    what: str
    measured: str
    goal: str
    passed: bool


def time_import_in_fresh_interpreter(statement: str, repeats: int) -> float:
    """Median seconds that ``statement`` takes in a new Python process (interpreter start excluded)."""
    code = f"import time; t0 = time.perf_counter(); {statement}; print(time.perf_counter() - t0)"
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
             for _ in range(repeats)]
    return statistics.median(times)


def heavy_modules_loaded_by(statement: str) -> list[str]:
    """Which of HEAVY_MODULES are in ``sys.modules`` after running ``statement`` in a new process."""
    code = (f"import sys, json; {statement}; "
            f"print(json.dumps([m for m in {list(HEAVY_MODULES)!r} if m in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def import_rows(repeats: int) -> list[Row]:
    """Import-time ratios against ``import torch`` and the heavy-module check."""
    torch_time = time_import_in_fresh_interpreter("import torch", repeats)
    rows = []
    for label, statement in (("`import neuromancer`", "import neuromancer"),
                             ("modeling layer + `Trainer`", MODELING_LAYER)):
        ratio = time_import_in_fresh_interpreter(statement, repeats) / torch_time
        rows.append(Row(f"{label} time / `import torch` time ({torch_time:.2f} s)", f"{ratio:.2f}", "<= 1.3",
                        ratio <= 1.3))
    for label, statement in (("`import neuromancer`", "import neuromancer"),
                             ("modeling layer + `Trainer`", MODELING_LAYER)):
        loaded = heavy_modules_loaded_by(statement)
        rows.append(Row(f"heavy modules imported by {label}", ", ".join(loaded) or "none",
                        "none of " + ", ".join(HEAVY_MODULES), not loaded))
    return rows


def portfolio_build_seconds(n: int, repeats: int = 5) -> float:
    """Median time to build ``sum(cov[i, j] * x[:, i] * x[:, j])`` over all i, j < n.

    Garbage left by earlier builds is collected before each timing, so that one build does not
    pay for another's; the garbage collector stays on while timing (its cost is part of building).
    """
    from neuromancer.constraint import variable

    cov = torch.rand(n, n, generator=torch.Generator().manual_seed(n))
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        x = variable("x")
        sum(cov[i, j] * x[:, i] * x[:, j] for i in range(n) for j in range(n))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def portfolio_rows() -> list[Row]:
    """Build times for the portfolio objective and the growth from n=20 to n=40."""
    seconds = {n: portfolio_build_seconds(n) for n in PORTFOLIO_SIZES}
    rows = [Row(f"build portfolio objective, n={n} ({n * n} terms)", f"{1000 * s:.1f} ms",
                "< 50 ms" if n == 20 else "-", s < 0.05 if n == 20 else True)
            for n, s in seconds.items()]
    growth = seconds[40] / seconds[20]
    rows.append(Row("build time n=40 / n=20 (4x the terms)", f"{growth:.2f}", "<= 4.5", growth <= 4.5))
    return rows


def rosenbrock_data(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Parameters a in [0.2, 1.2] and p in [0.5, 2.0] of the parametric Rosenbrock problem."""
    generator = torch.Generator().manual_seed(seed)
    return {"a": 0.2 + torch.rand(n, 1, generator=generator),
            "p": 0.5 + 1.5 * torch.rand(n, 1, generator=generator)}


def rosenbrock_mlp() -> torch.nn.Module:
    """The solution map: MLP 2 -> 2 with four hidden layers of 80 ReLU units."""
    from neuromancer import slim
    from neuromancer.modules import blocks

    torch.manual_seed(0)
    return blocks.MLP(insize=2, outsize=2, bias=True, linear_map=slim.maps["linear"], nonlin=torch.nn.ReLU,
                      hsizes=[80] * 4)


def rosenbrock_problem(mlp: torch.nn.Module, weight: float) -> torch.nn.Module:
    """The symbolic NeuroMANCER formulation: objective plus three penalized constraints."""
    from neuromancer.constraint import variable
    from neuromancer.loss import PenaltyLoss
    from neuromancer.problem import Problem
    from neuromancer.system import Node

    a, p, x = variable("a"), variable("p"), variable("x")
    x1, x2 = x[:, [0]], x[:, [1]]
    objective = ((1 - x1) ** 2 + a * (x2 - x1 ** 2) ** 2).minimize(weight=1.0, name="obj")
    constraints = [weight * (x1 >= x2), weight * ((p / 2) ** 2 <= x1 ** 2 + x2 ** 2),
                   weight * (x1 ** 2 + x2 ** 2 <= p ** 2)]
    for index, constraint in enumerate(constraints, start=1):
        constraint.name = f"c{index}"
    return Problem([Node(mlp, ["a", "p"], ["x"], name="solution_map")], PenaltyLoss([objective], constraints))


def rosenbrock_loss(mlp: torch.nn.Module, a: torch.Tensor, p: torch.Tensor, weight: float) -> torch.Tensor:
    """The same loss written by hand: mean objective plus weighted mean constraint violations."""
    x = mlp(torch.cat([a, p], dim=-1))
    x1, x2 = x[:, [0]], x[:, [1]]
    radius2 = x1 ** 2 + x2 ** 2
    objective = torch.mean((1 - x1) ** 2 + a * (x2 - x1 ** 2) ** 2)
    violations = (torch.relu(x2 - x1).mean() + torch.relu((p / 2) ** 2 - radius2).mean()
                  + torch.relu(radius2 - p ** 2).mean())
    return objective + weight * violations


def batch_loss_by_hand(weight: float) -> Callable[[torch.nn.Module, dict[str, torch.Tensor]], torch.Tensor]:
    """Loss of a batch with the hand-written formulation."""
    return lambda mlp, batch: rosenbrock_loss(mlp, batch["a"], batch["p"], weight)


def batch_loss_by_problem(weight: float) -> Callable[[torch.nn.Module, dict[str, torch.Tensor]], torch.Tensor]:
    """Loss of a batch with the symbolic `Problem` (built once per model)."""
    problems: dict[int, torch.nn.Module] = {}

    def loss(mlp: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if id(mlp) not in problems:
            problems[id(mlp)] = rosenbrock_problem(mlp, weight)
        return problems[id(mlp)](batch)[f"{batch['name']}_loss"]
    return loss


def plain_loop_seconds_per_epoch(loss_fn: Callable[[torch.nn.Module, dict[str, torch.Tensor]], torch.Tensor],
                                 mlp: torch.nn.Module, train: dict[str, torch.Tensor], dev: dict[str, torch.Tensor],
                                 batch_size: int, epochs: int) -> float:
    """Seconds per epoch of a plain PyTorch loop: shuffled batches, Adam, clipping, a dev pass."""
    optimizer = torch.optim.Adam(mlp.parameters(), lr=0.001)
    parameters = list(mlp.parameters())
    n_train, n_dev = len(train["a"]), len(dev["a"])
    start = time.perf_counter()
    for _ in range(epochs):
        mlp.train()
        for index in torch.randperm(n_train).split(batch_size):
            loss = loss_fn(mlp, {"a": train["a"][index], "p": train["p"][index], "name": "train"})
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 100.0)
            optimizer.step()
        mlp.eval()
        with torch.no_grad():
            dev_losses = [loss_fn(mlp, {"a": dev["a"][i:i + batch_size], "p": dev["p"][i:i + batch_size],
                                        "name": "dev"})
                          for i in range(0, n_dev, batch_size)]
            torch.stack(dev_losses).mean()
    return (time.perf_counter() - start) / epochs


def trainer_seconds_per_epoch(mlp: torch.nn.Module, train: dict[str, torch.Tensor], dev: dict[str, torch.Tensor],
                              batch_size: int, epochs: int, weight: float) -> float:
    """Seconds per epoch of `Trainer` on the symbolic formulation of the same problem."""
    from torch.utils.data import DataLoader

    from neuromancer.dataset import DictDataset
    from neuromancer.trainer import Trainer

    train_set, dev_set = DictDataset(train, name="train"), DictDataset(dev, name="dev")
    problem = rosenbrock_problem(mlp, weight)
    trainer = Trainer(problem, DataLoader(train_set, batch_size=batch_size, shuffle=True, collate_fn=train_set.collate_fn),
                      DataLoader(dev_set, batch_size=batch_size, collate_fn=dev_set.collate_fn),
                      optimizer=torch.optim.Adam(problem.parameters(), lr=0.001), epochs=epochs, patience=None,
                      clip=100.0)
    start = time.perf_counter()
    trainer.train()
    return (time.perf_counter() - start) / epochs


def same_loss_row(mlp: torch.nn.Module, data: dict[str, torch.Tensor], weight: float) -> Row:
    """Check that the hand-written loss and the symbolic problem compute the same value."""
    with torch.no_grad():
        symbolic = float(rosenbrock_problem(mlp, weight)({**data, "name": "train"})["train_loss"])
        by_hand = float(rosenbrock_loss(mlp, data["a"], data["p"], weight))
    same = abs(symbolic - by_hand) <= 1e-5 * max(1.0, abs(by_hand))
    return Row("same work: symbolic problem loss vs hand-written loss", f"{symbolic:.6g} vs {by_hand:.6g}",
               "equal", same)


def trainer_rows(n_samples: int, batch_size: int, epochs: int, rounds: int) -> list[Row]:
    """`Trainer` versus plain loops (hand-written loss, and the same `Problem`), interleaved in rounds."""
    weight = 100.0
    train, dev = rosenbrock_data(n_samples, seed=0), rosenbrock_data(n_samples, seed=1)
    initial = rosenbrock_mlp()
    check = same_loss_row(initial, train, weight)
    runners: dict[str, Callable[[torch.nn.Module, int], float]] = {
        "hand": lambda mlp, n: plain_loop_seconds_per_epoch(batch_loss_by_hand(weight), mlp, train, dev, batch_size, n),
        "problem": lambda mlp, n: plain_loop_seconds_per_epoch(batch_loss_by_problem(weight), mlp, train, dev,
                                                               batch_size, n),
        "trainer": lambda mlp, n: trainer_seconds_per_epoch(mlp, train, dev, batch_size, n, weight),
    }
    for runner in runners.values():
        runner(copy.deepcopy(initial), 1)
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            samples[name].append(runner(copy.deepcopy(initial), epochs))
    hand, problem, ours = (statistics.median(samples[name]) for name in ("hand", "problem", "trainer"))
    steps = -(-n_samples // batch_size)
    return [
        check,
        Row(f"hand-written PyTorch loop and loss, s/epoch ({steps} steps + dev pass)", f"{hand:.3f}", "-", True),
        Row("the same loop calling the symbolic `Problem`, s/epoch", f"{problem:.3f}", "-", True),
        Row("`Trainer` on the symbolic `Problem`, s/epoch", f"{ours:.3f}", "-", True),
        Row("`Trainer` / hand-written loop", f"{ours / hand:.2f}", "<= 1.3", ours / hand <= 1.3),
        Row("(breakdown) `Problem` loop / hand-written loop: modeling-layer cost", f"{problem / hand:.2f}", "-", True),
        Row("(breakdown) `Trainer` / `Problem` loop: the trainer's own cost", f"{ours / problem:.2f}", "-", True),
    ]


def format_table(rows: list[Row]) -> list[str]:
    """Markdown table lines (also readable as plain text)."""
    lines = ["| what | measured | goal | pass |", "| --- | --- | --- | --- |"]
    lines += [f"| {r.what} | {r.measured} | {r.goal} | {'yes' if r.passed else 'NO'} |" for r in rows]
    return lines


def report(rows: list[Row], title: str, description: str, path: Path) -> int:
    """Print ``rows`` as a table, write it with ``title`` and ``description`` as Markdown to ``path``.

    :return: 0 if every row passed its goal, else 1 (the benchmark scripts' exit status).
    """
    table = format_table(rows)
    print("\n".join(table))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([f"# {title}", "", description, "", *table]) + "\n")
    print(f"\nwritten to {path}")
    return 0 if all(row.passed for row in rows) else 1


def main(argv: list[str] | None = None) -> int:
    """Run every benchmark, print the table, write it to benchmarks/results/core.md; 1 if a goal is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--import-repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=5000, help="train and dev samples each")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timing round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for the training timings")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    rows = import_rows(args.import_repeats) + portfolio_rows() + trainer_rows(args.samples, 64, args.epochs, args.rounds)
    return report(rows, "Core benchmarks",
                  f"Measured in one run of `python benchmarks/core.py` (torch {torch.__version__}, "
                  f"{args.threads} thread(s), batch 64, {args.samples} train + {args.samples} dev samples). "
                  "`import neuromancer` loads submodules on first use, so it imports neither torch nor the "
                  "modeling layer; the second import row is what a training script pays.", RESULTS)


if __name__ == "__main__":
    sys.exit(main())
