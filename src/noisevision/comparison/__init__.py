"""The comparison suite (``noisevision compare``) and its report."""
