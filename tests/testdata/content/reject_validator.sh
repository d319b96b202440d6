#!/bin/sh
# A vendor validator that ran and rejects the payload. Unknown keys ("line")
# are ignored.
cat > /dev/null
echo '{"findings": [{"code": "OFFSET_OUT_OF_RANGE", "severity": "error", "instance": "cf291-i7", "field": "wildcard_21", "message": "input 21 read at offset 160 of a 160-byte array", "line": 3}]}'
