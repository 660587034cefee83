"""Dates as the admin shows them (FORMAT_MODULE_PATH): ISO order, seconds and the time zone, so
a timestamp read off a page matches the logs and the API."""

DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
