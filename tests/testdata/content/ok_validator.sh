#!/bin/sh
# A vendor validator that ran and found nothing wrong but has a remark: it
# reports how many payload bytes it read from stdin.
n=$(wc -c | tr -d ' ')
printf '{"findings": [{"code": "VENDOR_NOTE", "severity": "warning", "instance": "cf291-i7", "field": "wildcard_21", "message": "parsed %s bytes"}]}\n' "$n"
