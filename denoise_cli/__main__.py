"""``python -m denoise_cli`` is the same program as ``dncli``."""
from .cli.app import main

raise SystemExit(main())
