-- Argo CD health check for cloudinfer.dev CloudAccount (and InferenceService, which
-- shares the status contract; see docs/gitops.md). Argo CD reports objects that are
-- being deleted as Progressing without calling this script.
-- Only base Lua is used: scripts installed through argocd-cm get no string library.

-- Ready reasons (operator/cloudinfer/api/conditions.py) by health status. A reason that
-- is in none of these lists falls back on the condition status: False is Degraded,
-- Unknown is Progressing.
local PROGRESSING = {
  Converging = true,
  CloudThrottled = true,
  CloudUnreachable = true,
  PendingObservation = true,
}
local DEGRADED = {
  AuthFailed = true,
  InvalidSpec = true,
  UnsupportedByCloud = true,
  AccountNotReady = true,
  ServiceNotFound = true,
  InstanceNotFound = true,
  SecretNotFound = true,
  EndpointNotAllowed = true,
  CloudRejected = true,
  PermissionDenied = true,
  CloudServiceFailed = true,
  PlatformStopped = true,
  QuotaExceeded = true,
  ServiceClaimed = true,
}
local SUSPENDED = {
  Suspended = true,
  ScheduledStop = true,
  Paused = true,
  ObserveOnly = true,
  StoppedOutsideOperator = true,
}

local function describe(cond)
  local reason = cond.reason
  if reason == nil or reason == "" then
    reason = "Ready is " .. tostring(cond.status)
  end
  if cond.message == nil or cond.message == "" then
    return reason
  end
  return reason .. ": " .. cond.message
end

local function health(obj)
  local status = obj.status
  if status == nil then
    return {status = "Progressing", message = "Waiting for the operator to report status"}
  end

  local ready = nil
  if status.conditions ~= nil then
    for _, cond in ipairs(status.conditions) do
      if cond.type == "Ready" then
        ready = cond
      end
    end
  end

  -- The status must describe the current spec: the top-level observedGeneration and
  -- Ready's own observedGeneration, when set, must have caught up with the generation.
  local generation = nil
  if obj.metadata ~= nil then
    generation = obj.metadata.generation
  end
  if generation ~= nil then
    local observed = status.observedGeneration
    if observed == nil and ready ~= nil then
      observed = ready.observedGeneration
    end
    if observed == nil or observed < generation then
      return {status = "Progressing",
              message = "Waiting for the operator to observe generation " .. tostring(generation)}
    end
    if ready ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
      return {status = "Progressing",
              message = "Waiting for the Ready condition of generation " .. tostring(generation)}
    end
  end

  if obj.spec ~= nil and obj.spec.suspend == true then
    local message = "Suspended: spec.suspend is true"
    if ready ~= nil and ready.status ~= "True" and ready.reason == "Suspended"
        and ready.message ~= nil and ready.message ~= "" then
      message = "Suspended: " .. ready.message
    end
    return {status = "Suspended", message = message}
  end

  if ready == nil then
    return {status = "Progressing", message = "Waiting for the Ready condition"}
  end
  if ready.status == "True" then
    if ready.message ~= nil and ready.message ~= "" then
      return {status = "Healthy", message = ready.message}
    end
    return {status = "Healthy", message = "Ready"}
  end

  local reason = ready.reason
  if reason ~= nil then
    if SUSPENDED[reason] then
      return {status = "Suspended", message = describe(ready)}
    end
    if DEGRADED[reason] then
      return {status = "Degraded", message = describe(ready)}
    end
    if PROGRESSING[reason] then
      return {status = "Progressing", message = describe(ready)}
    end
  end
  if ready.status == "False" then
    return {status = "Degraded", message = describe(ready)}
  end
  return {status = "Progressing", message = describe(ready)}
end

return health(obj)
