"""What only the service needs: the request schema, S3, the weights download, the job functions,
the GPU slots, metrics and fault injection. With ``client`` and ``demo``, the only importers of
boto3. Only the entry points (``service.py``, ``cli``, ``doctor``) import this package; both rules
are checked by import-linter (see ``.importlinter``)."""
