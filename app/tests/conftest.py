import os
import sys

# Make `import medisys_app` work whether pytest runs from app/ or the repo root.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
