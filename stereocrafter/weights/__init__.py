"""The weight files as facts: the manifest of what each model's repo holds at a pinned commit
(``manifest``) and the check of ``WEIGHTS_DIR`` against it (``integrity``). No torch, no network."""
