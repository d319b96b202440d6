#!/bin/sh
# A vendor parser that crashes on the payload.
cat > /dev/null
echo '{"findings": []}'
kill -SEGV $$
