-- wrk script for bench/http_submit.py --wrk: POST /v1/proposals with a distinct title and a
-- distinct Idempotency-Key on every request (oha sends the same headers on every request).
-- wrk.format with a header table sends only those headers, so all of them are here.
local counter, thread_no, threads = 0, 0, {}
local prefix = string.format("%x", os.time())

function setup(thread)
  thread_no = thread_no + 1
  thread:set("tid", thread_no)
  table.insert(threads, thread)
end

request = function()
  counter = counter + 1
  local id = prefix .. "-" .. tostring(tid) .. "-" .. counter
  local body = '{"title":"HTTP bench wrk ' .. id .. '","summary":"A six-month shuttle pilot between Kera station and the new housing blocks.","focus_area":"smart_mobility","environment":"kera","proposer":{"organisation":"Example Mobility Oy","kind":"company","contact_email":"pilot@example.com"},"hypothesis":"A feeder shuttle raises rail use among new residents.","kpis":[{"name":"daily riders","unit":"riders/day","baseline":0,"target":200}],"budget_eur":45000,"duration_weeks":26,"partners":["Kera school"],"language":"en"}'
  return wrk.format("POST", nil, {
    ["Authorization"] = "Bearer test-admin-token",
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = "wrk-" .. id,
  }, body)
end
