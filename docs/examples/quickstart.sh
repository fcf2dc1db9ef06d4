#!/bin/sh
# The README's first example: a user, shopping events, a decide, feedback on it. Run it against a service started
# with `.venv/bin/bandit-push serve` in the same directory (BASE and BANDIT_PUSH override the address and the
# command). It prints each command and the service's answer; CI runs it on a fresh service
# (tests/integration/test_quickstart.py) and checks that the README shows this output.
set -eu
BASE=${BASE:-localhost:8000}
BANDIT_PUSH=${BANDIT_PUSH:-.venv/bin/bandit-push}
# today, 17:30 in Berlin in winter (18:30 in summer): in the evening daypart, outside the quiet hours (22-08)
NOW=$(date -u +%Y-%m-%dT16:30:00Z)
LATER=$(date -u +%Y-%m-%dT16:45:00Z)

run() {  # show the command as a reader would type it, then run it and show what it answered
  printf '$ %s\n' "$(printf '%s' "$1" | sed 's|\$BASE|localhost:8000|g; s|\$BANDIT_PUSH|.venv/bin/bandit-push|g')"
  OUT=$(eval "$1")
  printf '%s\n' "$OUT"
}

echo "# a user, with a time zone (quiet hours and dayparts follow it)"
run 'curl -s -X PUT $BASE/v1/users/alice -d '"'"'{"timezone": "Europe/Berlin"}'"'"
echo
echo "# shopping behaviour (one event, or {\"events\": [...]} for a batch)"
run 'curl -s $BASE/v1/events -d '"'"'{"events": [
  {"user_id": "alice", "item_id": "85123A", "type": "purchase", "value": 15.3},
  {"user_id": "bob", "item_id": "71053", "type": "add_to_cart"},
  {"user_id": "bob", "item_id": "22423", "type": "view"}]}'"'"
echo
echo "# the popular items, now (the scheduler does it every minute)"
run '$BANDIT_PUSH refresh-popular 2>&1'
echo
echo "# ask before a push; now (optional, default: the server clock) is the gateway's: epoch seconds or ISO 8601"
echo "# with an offset. Here: $NOW"
run 'curl -s $BASE/v1/decide -d "{\"user_id\": \"alice\", \"k\": 3, \"now\": \"$NOW\"}"'
DID=$(printf '%s' "$OUT" | python3 -c 'import json, sys; print(json.load(sys.stdin)["decision_id"])')
echo
echo "# what happened after the push, reported with the decision's id (a retry counts once)"
run 'curl -s $BASE/v1/feedback -d "{\"decision_id\": \"$DID\", \"event\": \"clicked\", \"ts\": \"$LATER\"}"'
echo
echo "# the user now"
run 'curl -s "$BASE/v1/users/alice?now=$LATER"'
