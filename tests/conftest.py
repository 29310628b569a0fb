"""Shared test set-up: the repository root on sys.path, so tests import config and components."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
