"""nim-manager: the GPU-aware deployment scheduler and run conductor of Flywheel."""
