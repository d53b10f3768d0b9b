"""Where segments come from: capture files, the live socket, the kernel's trace."""
