-- claim_index: dense indexes allocated for ids (by an RPUSH on their id list, a key of another slot) become the
-- ids' unless they had one already (bandit_push/events.py): concurrent first events allocate two, one wins, both
-- learn it.
-- KEYS[1] = the hash holding the indexes (a user hash, or the item index)
-- ARGV[1] = '1' to claim only if the hash exists (a user deleted since is not recreated)
-- ARGV[2..] = pairs: field, the index allocated for it
-- returns per pair the field's index (the winner's), or an empty list when ARGV[1] is '1' and the hash is gone

if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local won = {}
for j = 2, #ARGV, 2 do
  redis.call('HSETNX', KEYS[1], ARGV[j], ARGV[j + 1])
  won[#won + 1] = redis.call('HGET', KEYS[1], ARGV[j])
end
return won
