#!/bin/sh
# Writes 1 MB to stdout.
cat > /dev/null
head -c 1048576 /dev/zero | tr '\0' 'x'
