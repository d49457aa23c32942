-- Argo CD health check for smartid.io/SmartIDDatabase.
-- Reads only what the operator writes (status.observedGeneration, status.phase, the Ready
-- condition) and uses only what Argo CD gives a health check from argocd-cm: the base and
-- table libraries (no string, math or os), so it runs unchanged there and built in.
local hs = {}

local function condition(conditions, type_)
  for _, c in ipairs(conditions) do
    if c.type == type_ then return c end
  end
  return nil
end

local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

-- A spec change the operator has not acted on yet: the conditions describe the old spec.
local generation = obj.metadata.generation
local observed = status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = condition(status.conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end

-- Failed: a person must fix the spec or what it points at. Degraded: MongoDB is unreachable.
-- Anything else (Pending, Progressing) is on its way.
if status.phase == "Failed" or status.phase == "Degraded" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = "Not ready"
if ready ~= nil and ready.message ~= nil then hs.message = ready.message end
return hs
