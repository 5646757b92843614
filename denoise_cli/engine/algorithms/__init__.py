"""Restoration algorithms that take any denoiser ``denoiser(x, sigma)`` as their image prior."""
