"""One module per architecture family; importing this package registers them all."""
from . import unet3  # noqa: F401
from . import mapdenoiser  # noqa: F401
from . import blindspot  # noqa: F401
from . import dde  # noqa: F401
from . import classifier  # noqa: F401
from . import segmenter  # noqa: F401
