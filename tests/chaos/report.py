"""What the chaos suite injected and what it checked, per scenario, printed at the end of the
session whatever the capture mode (the scenarios' own prints are captured unless `-s`)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Scenario:
    name: str
    injected: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    passed: bool = False

    def inject(self, line: str) -> None:
        self.injected.append(line)
        print(f"[chaos] {self.name}: injected {line}")

    def check(self, line: str) -> None:
        self.checked.append(line)
        print(f"[chaos] {self.name}: checked {line}")


@dataclass
class ChaosReport:
    """One session's scenarios; `seed` makes every random choice of the session repeatable."""

    seed: int
    scenarios: list[Scenario] = field(default_factory=list)

    def scenario(self, name: str) -> Scenario:
        scenario = Scenario(name)
        self.scenarios.append(scenario)
        return scenario

    def rng(self, name: str) -> random.Random:
        """A generator per scenario: its choices do not depend on which scenarios ran before."""
        return random.Random(f"{self.seed}/{name}")

    def lines(self) -> list[str]:
        out = [f"chaos seed {self.seed} (rerun with FLYWHEEL_CHAOS_SEED={self.seed})"]
        for scenario in self.scenarios:
            verdict = "PASSED" if scenario.passed else "FAILED"
            out.append(f"{verdict} {scenario.name}")
            out += [f"  injected: {line}" for line in scenario.injected]
            out += [f"  checked:  {line}" for line in scenario.checked]
        passed = sum(s.passed for s in self.scenarios)
        out.append(
            f"chaos summary: {passed}/{len(self.scenarios)} scenarios passed, seed {self.seed}"
        )
        return out
