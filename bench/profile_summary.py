"""Summarise a py-spy raw profile: `python -m bench.profile_summary FILE [--match TEXT ...] [--top N]`.

`BENCH_PROFILE_DIR=/tmp/prof python -m bench load` leaves one py-spy file per
server (collapsed stacks, one `frame;frame;... count` per line). This prints the
functions with the most samples, inclusive (anywhere on the stack) and self
(the innermost frame), optionally only frames whose text contains one of
--match (e.g. `--match telemetry/ apikeys/ django/db`).
"""

import argparse
import sys
from collections import Counter
from pathlib import Path


def summarise(path: Path, *, matches: list[str], top: int) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        total += count
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def wanted(frame: str) -> bool:
        return not matches or any(m in frame for m in matches)

    out = [f"{total} samples in {path}"]
    for title, counter in (("inclusive", inclusive), ("self", own)):
        out.append(f"\n-- {title}")
        rows = [(frame, n) for frame, n in counter.most_common() if wanted(frame)][:top]
        out += [f"{100 * n / total:6.1f}%  {frame}" for frame, n in rows]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_summary")
    parser.add_argument("file", type=Path)
    parser.add_argument("--match", nargs="*", default=[])
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    print(summarise(args.file, matches=args.match, top=args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
