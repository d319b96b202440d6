#!/bin/sh
# Allocates without bound; under RLIMIT_AS the allocation fails and awk
# exits non-zero (or dies).
cat > /dev/null
exec awk 'BEGIN { s = "x"; while (1) s = s s }'
