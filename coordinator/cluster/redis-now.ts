/**
 * The start of a Lua script that reads Redis's clock into `now` (ms): every
 * node's heartbeats, ages and slot times are on one clock, however skewed
 * the machines' are.
 */
export const REDIS_NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;
