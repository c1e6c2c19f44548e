"""``segscope models``: list every registered method."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered methods", description="List every registered method.")
    p.add_argument("--family", choices=("classical", "deep"), help="only this family")
    p.add_argument("--task", choices=("semantic", "binary", "instance"), help="only this task")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segscope.factory import get_entry, list_models

    names = list_models(family=args.family, task=args.task)
    width = max((len(n) for n in names), default=4) + 2
    print(f"{'name':<{width}}{'family':<11}{'task':<10}summary")
    for name in names:
        e = get_entry(name)
        print(f"{name:<{width}}{e.family:<11}{e.task:<10}{e.summary}")
    return 0
