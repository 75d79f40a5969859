"""The jobs family: one job's context (``context``), the local jobs on files (``local``), the quality
report (``report``, drawn by ``report_image``) and where its files are written."""
