-- trio_search.lua: a Wireshark dissector for trio_search, the protocol of
-- Real Python's "Socket Programming in Python" tutorial application.
--
-- A message on the wire (docs/protocol.md):
--
--   +-----------+----------------------------+----------------------+
--   | 2 bytes   | header_length bytes        | content-length bytes |
--   | ">H"      | JSON header, UTF-8         | content              |
--   +-----------+----------------------------+----------------------+
--
-- Theory of operation: messages are reassembled from TCP segments by
-- dissect_tcp_pdus. Its length function sees the stream from a message's
-- first byte, but the message's length is written inside the JSON header, so
-- it returns 0 ("I need one more segment") until the whole header is there,
-- and then 2 + header_length + content-length. The content-length is read
-- from the header text with a Lua pattern; a header without one that parses
-- is marked as malformed (expert info), and the message is taken to end with
-- its header, so that dissection goes on with the next bytes rather than
-- waiting for more forever.
--
-- Install: copy to ~/.local/lib/wireshark/plugins/, or run
--   tshark -X lua_script:trio_search.lua ...
-- The TCP port is a preference (default 65432): trio_search.port.

local trio_search = Proto("trio_search", "trio_search (Real Python socket tutorial protocol)")

local DEFAULT_PORT = 65432
-- Bytes before the JSON header: its length, an unsigned 16-bit big-endian.
local PREFIX_LENGTH = 2
-- A content-length past this cannot be reassembled (Wireshark counts PDU
-- lengths in a 32-bit int): the header is treated as malformed.
local MAX_CONTENT_LENGTH = 0x7fffffff - PREFIX_LENGTH - 0xffff

local fields = trio_search.fields
fields.header_length = ProtoField.uint16("trio_search.header_length", "Header length", base.DEC)
fields.header = ProtoField.string("trio_search.header", "JSON header", base.UNICODE)
fields.byteorder = ProtoField.string("trio_search.byteorder", "Byte order")
fields.content_type = ProtoField.string("trio_search.content_type", "Content type")
fields.content_encoding = ProtoField.string("trio_search.content_encoding", "Content encoding")
fields.content_length = ProtoField.uint32("trio_search.content_length", "Content length", base.DEC)
fields.content = ProtoField.bytes("trio_search.content", "Content")
fields.text = ProtoField.string("trio_search.text", "Content text", base.UNICODE)

local expert_no_content_length = ProtoExpert.new(
    "trio_search.no_content_length",
    "JSON header has no parsable content-length",
    expert.group.MALFORMED,
    expert.severity.ERROR
)
local expert_missing_key = ProtoExpert.new(
    "trio_search.missing_key",
    "JSON header lacks a required key",
    expert.group.PROTOCOL,
    expert.severity.WARN
)
trio_search.experts = { expert_no_content_length, expert_missing_key }

trio_search.prefs.port = Pref.uint("TCP port", DEFAULT_PORT, "TCP port of trio_search servers")

local json = Dissector.get("json")

-- A string value of `key` in the JSON text `header`: the value and its first
-- and one-past-last byte positions in `header`, or nil.
local function string_value(header, key)
    local start, value, stop = header:match('"' .. key:gsub("%-", "%%-") .. '"%s*:%s*"()([^"]*)()"')
    return value, start, stop
end

-- The content-length in the JSON text `header` (a non-negative integer that
-- Wireshark can reassemble) and its byte positions, or nil.
local function content_length_of(header)
    local start, digits, stop = header:match('"content%-length"%s*:%s*()(%d+)()%s*[,}]')
    local value = tonumber(digits)
    if value == nil or value > MAX_CONTENT_LENGTH then
        return nil
    end
    return value, start, stop
end

-- dissect_tcp_pdus' length function: the whole message's length, or 0 while
-- the JSON header is not all there yet (never a negative number: it would
-- be read as a huge length). Called with at least PREFIX_LENGTH bytes.
local function message_length(tvb, pinfo, offset)
    local header_length = tvb(offset, PREFIX_LENGTH):uint()
    if tvb:len() - offset < PREFIX_LENGTH + header_length then
        return 0
    end
    local header = tvb:raw(offset + PREFIX_LENGTH, header_length)
    local content_length = content_length_of(header) or 0
    return PREFIX_LENGTH + header_length + content_length
end

-- Byte range of `value` found at [start, stop) in the header text that
-- begins at `header_offset` of `tvb`.
local function range_of(tvb, header_offset, start, stop)
    return tvb(header_offset + start - 1, stop - start)
end

-- What this call of the dissector knows of its frame: whether it goes to
-- the server, and a summary of each message so far, for the Info column.
local to_server = false
local summaries = {}

-- Dissects one whole message; dissect_tcp_pdus hands it over reassembled.
local function dissect_message(tvb, pinfo, tree)
    local header_length = tvb(0, PREFIX_LENGTH):uint()
    local header_range = tvb(PREFIX_LENGTH, header_length)
    local header = header_range:raw()
    local subtree = tree:add(trio_search, tvb(), "trio_search message")

    subtree:add(fields.header_length, tvb(0, PREFIX_LENGTH))
    local header_item = subtree:add(fields.header, header_range, header_range:string(ENC_UTF_8))
    json:call(header_range:tvb(), pinfo, header_item)

    local values = {}
    for _, key in ipairs({ "byteorder", "content-type", "content-encoding" }) do
        local value, start, stop = string_value(header, key)
        values[key] = value
        if value then
            local field = fields[key:gsub("%-", "_")]
            subtree:add(field, range_of(tvb, PREFIX_LENGTH, start, stop), value)
        else
            subtree:add_proto_expert_info(expert_missing_key, 'JSON header has no "' .. key .. '"')
        end
    end

    local content_length, start, stop = content_length_of(header)
    local content_type = values["content-type"] or "?"
    local summary
    if content_length == nil then
        header_item:add_proto_expert_info(expert_no_content_length)
        summary = "malformed header"
    else
        subtree:add(fields.content_length, range_of(tvb, PREFIX_LENGTH, start, stop), content_length)
        local content_offset = PREFIX_LENGTH + header_length
        local content_range = tvb(content_offset, content_length)
        local content_item = subtree:add(fields.content, content_range)
        local encoding = (values["content-encoding"] or ""):lower()
        if content_length > 0 and (encoding == "utf-8" or encoding == "utf8") then
            if content_type == "text/json" then
                json:call(content_range:tvb(), pinfo, content_item)
            elseif content_type:sub(1, 5) == "text/" then
                content_item:add(fields.text, content_range, content_range:string(ENC_UTF_8))
            end
        end
        summary = string.format("%s, %d bytes", content_type, content_length)
    end

    -- json:call sets the columns to its own: set them back to ours.
    local text = (to_server and "Request: " or "Response: ") .. summary
    subtree:append_text(", " .. text)
    summaries[#summaries + 1] = text
    pinfo.cols.protocol:set("trio_search")
    pinfo.cols.info:set(table.concat(summaries, "; "))
    return tvb:len()
end

function trio_search.dissector(tvb, pinfo, tree)
    -- The port that chose this dissector is the server's.
    to_server = pinfo.dst_port == pinfo.match_uint
    summaries = {}
    pinfo.cols.protocol:set("trio_search")
    dissect_tcp_pdus(tvb, tree, PREFIX_LENGTH, message_length, dissect_message)
    return tvb:len()
end

local tcp_port = DissectorTable.get("tcp.port")
local registered_port = DEFAULT_PORT
tcp_port:add(registered_port, trio_search)

function trio_search.prefs_changed()
    if trio_search.prefs.port ~= registered_port then
        if registered_port ~= 0 then
            tcp_port:remove(registered_port, trio_search)
        end
        registered_port = trio_search.prefs.port
        if registered_port ~= 0 then
            tcp_port:add(registered_port, trio_search)
        end
    end
end
