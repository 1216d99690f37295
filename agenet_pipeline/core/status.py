"""The status words of a row: `ok`, or the reason it cannot be used. Rejected rows keep their reason."""

OK = "ok"
# Readers
MALFORMED_NAME = "malformed_name"
MALFORMED_LINE = "malformed_line"
MALFORMED_LABEL = "malformed_label"
MISSING_LABEL = "missing_label"
MISSING_FILE = "missing_file"
LABEL_OUT_OF_RANGE = "label_out_of_range"
DUPLICATE_ROW = "duplicate_row"  # a second row for a file already listed: the first is kept
# Decoding
UNREADABLE = "unreadable"
TOO_LARGE = "too_large"
INVALID_INPUT = "invalid_input"
# Face detection
NO_FACE = "no_face"
LOW_SCORE = "low_score"
TOO_SMALL = "too_small"
# A path leading outside the folder reads must stay in (a dataset's root, the served model's allowed folder):
# never read
OUTSIDE_ROOT = "outside_root"
# Serving
ERROR = "error"  # an unexpected failure for one photo: the detail names the exception
