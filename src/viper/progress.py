"""Progress and messages of long jobs through one optional hook (as pyannote's ProgressHook): a job calls
`hook(step, completed=k, total=n)` as its work advances and `hook(step, message=text)` to say something; with no
hook it says nothing. The CLI passes `ProgressBars()`."""

from __future__ import annotations

import sys
from typing import Any, Protocol


class Hook(Protocol):
    def __call__(self, step: str, *, completed: int | None = None, total: int | None = None,
                 message: str | None = None, details: dict[str, Any] | None = None) -> None: ...


def notify(hook: Hook | None, step: str, **update: Any) -> None:
    """Call the hook if there is one."""
    if hook is not None:
        hook(step, **update)


class ProgressBars:
    """A tqdm bar per step on stderr (`details` shown beside it), messages on stdout above the bars."""

    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}

    def __call__(self, step: str, *, completed: int | None = None, total: int | None = None,
                 message: str | None = None, details: dict[str, Any] | None = None) -> None:
        from tqdm import tqdm

        if message is not None:
            tqdm.write(message, file=sys.stdout)
        if total is None:
            return
        bar = self.bars.get(step)
        if bar is None:
            bar = self.bars[step] = tqdm(total=total, desc=step, file=sys.stderr)
        if details:
            bar.set_postfix(details, refresh=False)
        bar.update((completed or 0) - bar.n)
        if bar.n >= total:
            bar.close()
            del self.bars[step]
