#!/bin/sh
cat > /dev/null
echo '{"findings": [{"severity": "error", "message": "something is wrong"}]}'
