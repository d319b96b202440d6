#!/bin/sh
# A vendor parser that never finishes.
cat > /dev/null
sleep 30
echo '{"findings": []}'
