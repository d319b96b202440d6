#!/bin/sh
# Answers without reading its stdin.
echo '{"findings": []}'
