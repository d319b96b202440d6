#!/bin/sh
# A vendor parser that fails: prints something on stderr and exits 3.
cat > /dev/null
echo '{"findings": []}'
echo 'parser: unsupported header version 9' >&2
exit 3
