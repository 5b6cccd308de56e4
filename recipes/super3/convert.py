"""Node entry for the 'model import' / 'model export' stages: `python recipes/super3/convert.py --config <job dir>/train.yaml`.

Runs `super3.<backend>.convert.run` through the shared node runner (see nemotron.node.runner).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nemotron.node.runner import main  # noqa: E402

if __name__ == "__main__":
    main("model")
