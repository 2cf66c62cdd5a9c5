-- Argo CD health check for navigator.cloudpartner.io/Invoice.
-- An invoice written by Navigator: Healthy once issued.
-- Reads the standard conditions every Navigator kind writes: Stalled=True is Degraded (nothing happens
-- until someone changes the spec or what it refers to), Reconciling=True is Progressing (work under way,
-- or an error being retried), Ready=True is Healthy. A spec change not yet seen is Progressing.
hs = {}
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Navigator to reconcile this Invoice"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for Navigator to reconcile the latest change"
  return hs
end
local ready, stalled, reconciling = nil, nil, nil
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    ready = condition
  elseif condition.type == "Stalled" then
    stalled = condition
  elseif condition.type == "Reconciling" then
    reconciling = condition
  end
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.reason .. ": " .. (stalled.message or "")
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = reconciling.reason .. ": " .. (reconciling.message or "")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end
hs.status = "Progressing"
if ready ~= nil then
  hs.message = ready.reason .. ": " .. (ready.message or "")
else
  hs.message = "Waiting for Navigator to report Ready"
end
return hs
