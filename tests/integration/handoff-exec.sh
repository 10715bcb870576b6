#!/bin/sh
# placeholder until the test is written
exit 77
