"""Node entry for the 'sft' stage: `python recipes/super3/sft.py --config <job dir>/train.yaml`.

Runs `super3.<backend>.sft.run` through the shared node runner (see nemotron.node.runner).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nemotron.node.runner import main  # noqa: E402

if __name__ == "__main__":
    main("sft")
