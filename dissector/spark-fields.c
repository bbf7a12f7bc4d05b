/* sparkwire Wireshark plugin: the protocol, its fields, subtrees and expert infos. */
#include <string.h>

#include "spark-int.h"

int proto_spark = -1;
spark_hf_ids spark_hf;
spark_ett_ids spark_ett;
spark_ei_ids spark_ei;

const value_string spark_dir_vals[] = {
    { KR_D2S, "device->cloud" },
    { KR_S2D, "cloud->device" },
    { 0, NULL }
};

/* the words for frame states, variable types, platforms and generations come from libkeyring's tables
 * (keyring/names.h, laid out as a value_string) */
G_STATIC_ASSERT(sizeof(kr_name) == sizeof(value_string));
#define spark_var_type_vals ((const value_string *)kr_var_type_names)
#define spark_platform_vals ((const value_string *)kr_platform_names)
#define spark_generation_vals ((const value_string *)kr_generation_names)

void spark_register_fields(void)
{
    static hf_register_info hf[] = {
        { &spark_hf.step, { "Step", "spark.step", FT_STRING, BASE_NONE, NULL, 0x0,
          "nonce, id-block, session-block, hello, frame or data", HFILL } },
        { &spark_hf.direction, { "Direction", "spark.direction", FT_UINT8, BASE_DEC, VALS(spark_dir_vals), 0x0,
          "0 = device->cloud, 1 = cloud->device", HFILL } },
        { &spark_hf.pdu_index, { "PDU index", "spark.pdu.index", FT_UINT32, BASE_DEC, NULL, 0x0,
          "0-based PDU number in this connection (both directions)", HFILL } },
        { &spark_hf.stream_offset, { "Stream offset", "spark.pdu.offset", FT_UINT64, BASE_DEC, NULL, 0x0,
          "Offset of the PDU's first byte in its direction's byte stream", HFILL } },
        { &spark_hf.pdu_first_frame, { "PDU starts in frame", "spark.pdu.first_frame", FT_FRAMENUM, BASE_NONE,
          NULL, 0x0, "The frame holding the first byte of this PDU", HFILL } },
        { &spark_hf.pdu_completed_in, { "PDU completed in frame", "spark.pdu.completed_in", FT_FRAMENUM,
          BASE_NONE, NULL, 0x0, "The frame where the PDU these bytes belong to is complete", HFILL } },
        { &spark_hf.continuation, { "PDU segment bytes", "spark.pdu.segment", FT_UINT32, BASE_DEC, NULL, 0x0,
          "Bytes of a PDU that is completed in a later segment", HFILL } },
        { &spark_hf.retransmitted, { "Retransmitted bytes", "spark.retransmitted", FT_UINT32, BASE_DEC, NULL,
          0x0, "Bytes already seen in an earlier segment", HFILL } },
        { &spark_hf.gap, { "Missing bytes", "spark.gap", FT_UINT64, BASE_DEC, NULL, 0x0,
          "Bytes of this direction missing from the capture before this segment", HFILL } },
        { &spark_hf.device_id, { "Device ID", "spark.device_id", FT_STRING, BASE_NONE, NULL, 0x0,
          "24 lower-case hex digits", HFILL } },
        { &spark_hf.nonce, { "Nonce", "spark.nonce", FT_BYTES, BASE_NONE, NULL, 0x0,
          "40 random bytes from the cloud", HFILL } },
        { &spark_hf.nonce_ok, { "Nonce echoed", "spark.nonce_ok", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
          "The id block carries the nonce the cloud sent", HFILL } },
        { &spark_hf.id_block, { "Device ID block", "spark.id_block", FT_BYTES, BASE_NONE, NULL, 0x0,
          "RSA-2048 block: nonce, device id (and the device public key), for the cloud's key", HFILL } },
        { &spark_hf.id_block_opened, { "Opened with the server private key", "spark.id_block.opened",
          FT_BOOLEAN, BASE_NONE, NULL, 0x0,
          "Whether a server private key opened the device's RSA-encrypted id block", HFILL } },
        { &spark_hf.id_plain_len, { "Plaintext length", "spark.id_block.length", FT_UINT32, BASE_DEC, NULL, 0x0,
          "52 for the first Core firmware, 214 when the device offers its public key", HFILL } },
        { &spark_hf.offered_key_known, { "Offered public key matches a device key", "spark.id_block.key_known",
          FT_BOOLEAN, BASE_NONE, NULL, 0x0,
          "Whether the public key the device offers in its id block is one the keyfile holds", HFILL } },
        { &spark_hf.session_block, { "Session key block", "spark.session_block", FT_BYTES, BASE_NONE, NULL, 0x0,
          "RSA-1024 encrypted session material followed by the cloud's RSA-2048 signature", HFILL } },
        { &spark_hf.session_e, { "Encrypted session material", "spark.session_block.encrypted", FT_BYTES,
          BASE_NONE, NULL, 0x0,
          "The session material (key, IV, salt) encrypted to the device's public key", HFILL } },
        { &spark_hf.signature, { "Signature", "spark.signature", FT_BYTES, BASE_NONE, NULL, 0x0,
          "The cloud's signature over the session material's HMAC", HFILL } },
        { &spark_hf.session_opened, { "Opened with a device key", "spark.session_block.opened", FT_BOOLEAN,
          BASE_NONE, NULL, 0x0,
          "Whether a device private key opened the session material", HFILL } },
        { &spark_hf.signature_valid, { "Signature made by the cloud key", "spark.signature_valid", FT_BOOLEAN,
          BASE_NONE, NULL, 0x0, "The signature recovers to a PKCS#1 type 1 block with the server public key",
          HFILL } },
        { &spark_hf.signature_ok, { "Signature matches the session", "spark.signature_ok", FT_BOOLEAN, BASE_NONE,
          NULL, 0x0, "The signed bytes equal HMAC-SHA1(session, encrypted block)", HFILL } },
        { &spark_hf.hs_result, { "Key result", "spark.key_result", FT_STRING, BASE_NONE, NULL, 0x0,
          "What went wrong when opening this step with the keys at hand", HFILL } },
        { &spark_hf.generation, { "Firmware generation", "spark.generation", FT_UINT8, BASE_DEC,
          VALS(spark_generation_vals), 0x0,
          "1 = first Core firmware (52-byte id block), 2 = later firmware (214 bytes)", HFILL } },
        { &spark_hf.note, { "Note", "spark.note", FT_STRING, BASE_NONE, NULL, 0x0,
          "What the tracker says about this step, in words", HFILL } },
        { &spark_hf.frame_length, { "Frame length", "spark.frame.length", FT_UINT16, BASE_DEC, NULL, 0x0,
          "Ciphertext bytes that follow", HFILL } },
        { &spark_hf.frame_ciphertext, { "Ciphertext", "spark.frame.ciphertext", FT_BYTES, BASE_NONE, NULL, 0x0,
          
          "The AES-128-CBC encrypted body of the frame", HFILL } },
        { &spark_hf.frame_state, { "Decryption", "spark.frame.state", FT_UINT8, BASE_DEC,
          VALS(spark_frame_state_vals), 0x0,
          "Whether and how far this frame was decrypted", HFILL } },
        { &spark_hf.data, { "Data", "spark.data", FT_BYTES, BASE_NONE, NULL, 0x0,
          "Bytes shown as they are (not decrypted, or not the protocol)", HFILL } },
        { &spark_hf.msg_kind, { "Message", "spark.msg.kind", FT_STRING, BASE_NONE, NULL, 0x0,
          "hello, describe, function-call, event, ...", HFILL } },
        { &spark_hf.msg_summary, { "Summary", "spark.msg.summary", FT_STRING, BASE_NONE, NULL, 0x0,
          "One line saying what the message does", HFILL } },
        { &spark_hf.msg_index, { "Message index", "spark.msg.index", FT_UINT32, BASE_DEC, NULL, 0x0,
          "0-based number of the decrypted message in this connection", HFILL } },
        { &spark_hf.uri, { "URI", "spark.msg.uri", FT_STRING, BASE_NONE, NULL, 0x0,
          "The CoAP URI path of the message", HFILL } },
        { &spark_hf.query, { "Query", "spark.msg.query", FT_STRING, BASE_NONE, NULL, 0x0,
          "The CoAP URI query of the message", HFILL } },
        { &spark_hf.event_name, { "Event name", "spark.event.name", FT_STRING, BASE_NONE, NULL, 0x0,
          "Name of the published or subscribed event", HFILL } },
        { &spark_hf.event_data, { "Event data", "spark.event.data", FT_STRING, BASE_NONE, NULL, 0x0,
          "Data published with the event", HFILL } },
        { &spark_hf.event_ttl, { "Event TTL", "spark.event.ttl", FT_UINT32, BASE_DEC, NULL, 0x0,
          "Seconds", HFILL } },
        { &spark_hf.event_public, { "Public event", "spark.event.public", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
          
          "Whether the event is public (/e) or private (/E)", HFILL } },
        { &spark_hf.function_name, { "Function", "spark.function.name", FT_STRING, BASE_NONE, NULL, 0x0,
          "Name of the cloud function called on the device", HFILL } },
        { &spark_hf.function_arg, { "Function argument", "spark.function.arg", FT_STRING, BASE_NONE, NULL, 0x0,
          
          "Argument string given to the function", HFILL } },
        { &spark_hf.function_result, { "Function result", "spark.function.result", FT_STRING, BASE_NONE, NULL,
          0x0,
          "Integer the function returned", HFILL } },
        { &spark_hf.variable_name, { "Variable", "spark.variable.name", FT_STRING, BASE_NONE, NULL, 0x0,
          "Name of the device variable", HFILL } },
        { &spark_hf.variable_value, { "Variable value", "spark.variable.value", FT_STRING, BASE_NONE, NULL, 0x0,
          
          "Value of the variable, as text", HFILL } },
        { &spark_hf.variable_type, { "Variable type", "spark.variable.type", FT_UINT8, BASE_DEC,
          VALS(spark_var_type_vals), 0x0,
          "Type of the variable's value", HFILL } },
        { &spark_hf.time, { "Cloud time", "spark.time", FT_ABSOLUTE_TIME, ABSOLUTE_TIME_UTC, NULL, 0x0,
          "Time the cloud sent in answer to a time request", HFILL } },
        { &spark_hf.product_id, { "Product ID", "spark.hello.product_id", FT_UINT16, BASE_HEX, NULL, 0x0,
          "Product id the device announces in its Hello", HFILL } },
        { &spark_hf.product_version, { "Product firmware version", "spark.hello.product_version", FT_UINT16,
          BASE_HEX, NULL, 0x0,
          "Product firmware version the device announces in its Hello", HFILL } },
        { &spark_hf.hello_flags, { "Hello flags", "spark.hello.flags", FT_UINT8, BASE_HEX, NULL, 0x0,
          "Bit 0: the previous OTA update succeeded", HFILL } },
        { &spark_hf.platform_id, { "Platform", "spark.hello.platform", FT_UINT32, BASE_DEC,
          VALS(spark_platform_vals), 0x0,
          "Hardware platform the device announces in its Hello", HFILL } },
        { &spark_hf.ota_chunk_index, { "Chunk index", "spark.ota.chunk_index", FT_UINT32, BASE_DEC, NULL, 0x0,
          
          "0-based index of the firmware chunk", HFILL } },
        { &spark_hf.ota_crc, { "Chunk CRC-32", "spark.ota.crc", FT_UINT32, BASE_HEX, NULL, 0x0,
          "CRC-32 the cloud sent with the chunk", HFILL } },
        { &spark_hf.ota_crc_ok, { "Chunk CRC matches", "spark.ota.crc_ok", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
          
          "Whether the chunk's bytes match the CRC sent with it", HFILL } },
        { &spark_hf.ota_chunk_size, { "Chunk size", "spark.ota.chunk_size", FT_UINT32, BASE_DEC, NULL, 0x0,
          
          "Size of a firmware chunk in bytes", HFILL } },
        { &spark_hf.response_to, { "Response to the request in", "spark.response_to", FT_FRAMENUM, BASE_NONE,
          FRAMENUM_TYPE(FT_FRAMENUM_REQUEST), 0x0,
          "The frame holding the request this message answers", HFILL } },
        { &spark_hf.response_in, { "Response in", "spark.response_in", FT_FRAMENUM, BASE_NONE,
          FRAMENUM_TYPE(FT_FRAMENUM_RESPONSE), 0x0,
          "The frame holding the answer to this request", HFILL } },
        { &spark_hf.response_time, { "Response time", "spark.response_time", FT_RELATIVE_TIME, BASE_NONE, NULL,
          0x0, "Seconds between the request and this answer", HFILL } },
        { &spark_hf.answers, { "Answers", "spark.answers", FT_STRING, BASE_NONE, NULL, 0x0,
          "Kind of the message this one answers", HFILL } },
        { &spark_hf.verdict, { "Verdict", "spark.verdict", FT_STRING, BASE_NONE, NULL, 0x0,
          "ok, device-key-mismatch, server-key-mismatch, unknown-device, bad-signature, nonce-mismatch, "
          "id-block-rejected, session-block-rejected, not-spark, stalled, incomplete, mid-session", HFILL } },
        { &spark_hf.verdict_meaning, { "Meaning", "spark.verdict.meaning", FT_STRING, BASE_NONE, NULL, 0x0,
          "What the verdict means, in words", HFILL } },
        { &spark_hf.verdict_evidence, { "Evidence", "spark.verdict.evidence", FT_STRING, BASE_NONE, NULL, 0x0,
          
          "What the verdict rests on: the steps, keys and bytes seen", HFILL } },
        { &spark_hf.verdict_proven, { "Proven by a key", "spark.verdict.proven", FT_BOOLEAN, BASE_NONE, NULL,
          0x0, "True: a key proves it; false: inferred from the wire alone", HFILL } },
        { &spark_hf.verdict_final, { "Final", "spark.verdict.final", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
          "The connection (or the capture) ended", HFILL } },
        { &spark_hf.verdict_candidate, { "Candidate cause", "spark.verdict.candidate", FT_STRING, BASE_NONE,
          NULL, 0x0, "A cause the wire cannot rule out", HFILL } },
        { &spark_hf.verdict_last_step, { "Last step", "spark.verdict.last_step", FT_STRING, BASE_NONE, NULL,
          0x0,
          "The last handshake step the connection reached", HFILL } },
        { &spark_hf.finding, { "Finding", "spark.finding", FT_STRING, BASE_NONE, NULL, 0x0,
          "gap, ota-incomplete, ota-chunk-error, counter-error, decrypt-error", HFILL } },
        { &spark_hf.finding_text, { "Evidence", "spark.finding.text", FT_STRING, BASE_NONE, NULL, 0x0,
          "The finding's detail: where and what", HFILL } },
        { &spark_hf.keyfile_error, { "Keyfile error", "spark.keyfile_error", FT_STRING, BASE_NONE, NULL, 0x0,
          "Why the keyfile named by the preference was not loaded, and how to fix it", HFILL } },
        { &spark_hf.session_key, { "Session key", "spark.session.key", FT_BYTES, BASE_NONE, NULL, 0x0,
          "The AES-128 session key (shown only with the preference spark.show_session_key)", HFILL } },
        { &spark_hf.session_iv, { "Session IV", "spark.session.iv", FT_BYTES, BASE_NONE, NULL, 0x0,
          "The first CBC IV of the session (shown only with spark.show_session_key)", HFILL } },
        { &spark_hf.session_salt, { "Session salt", "spark.session.salt", FT_BYTES, BASE_NONE, NULL, 0x0,
          "The 8-byte salt of the session material (shown only with spark.show_session_key)", HFILL } },
        { &spark_hf.released, { "Connections released", "spark.released", FT_UINT32, BASE_DEC, NULL, 0x0,
          "Connections without protocol data whose tracking ended when this one started: more were open than "
          "spark.max_conns", HFILL } },
        { &spark_hf.close, { "Connection", "spark.close", FT_STRING, BASE_NONE, NULL, 0x0,
          "Which side closed (FIN) or reset (RST) the connection", HFILL } },
    };

    static gint *ett[] = {
        &spark_ett.top, &spark_ett.step, &spark_ett.session_block, &spark_ett.msg, &spark_ett.verdict,
        &spark_ett.finding,
    };

    static ei_register_info ei[] = {
        { &spark_ei.verdict_ok, { "spark.expert.verdict_ok", PI_SEQUENCE, PI_CHAT,
          "Handshake completed", EXPFILL } },
        { &spark_ei.verdict_proven, { "spark.expert.verdict_proven", PI_PROTOCOL, PI_ERROR,
          "Handshake failure proven by a key", EXPFILL } },
        { &spark_ei.verdict_inferred, { "spark.expert.verdict_inferred", PI_PROTOCOL, PI_WARN,
          "Handshake failure inferred from the wire", EXPFILL } },
        { &spark_ei.verdict_not_spark, { "spark.expert.verdict_not_spark", PI_MALFORMED, PI_ERROR,
          "The peer on the cloud port does not speak the Spark protocol", EXPFILL } },
        { &spark_ei.verdict_capture, { "spark.expert.verdict_capture", PI_SEQUENCE, PI_NOTE,
          "The capture does not hold the whole handshake", EXPFILL } },
        { &spark_ei.not_opened, { "spark.expert.not_opened", PI_DECRYPTION, PI_WARN,
          "Handshake block not opened with the keys at hand", EXPFILL } },
        { &spark_ei.no_key, { "spark.expert.no_key", PI_DECRYPTION, PI_WARN,
          "No device key for this connection", EXPFILL } },
        { &spark_ei.not_decrypted, { "spark.expert.not_decrypted", PI_DECRYPTION, PI_NOTE,
          "Frame not decrypted", EXPFILL } },
        { &spark_ei.partial, { "spark.expert.partial", PI_DECRYPTION, PI_WARN,
          "Frame follows a gap: first block lost", EXPFILL } },
        { &spark_ei.decrypt_error, { "spark.expert.decrypt_error", PI_DECRYPTION, PI_ERROR,
          "Frame does not decrypt", EXPFILL } },
        { &spark_ei.not_spark, { "spark.expert.not_spark", PI_MALFORMED, PI_ERROR,
          "Not the Spark protocol", EXPFILL } },
        { &spark_ei.nonce_bad, { "spark.expert.nonce_mismatch", PI_PROTOCOL, PI_ERROR,
          "The id block does not echo the nonce", EXPFILL } },
        { &spark_ei.signature_bad, { "spark.expert.bad_signature", PI_SECURITY, PI_ERROR,
          "The session block's signature does not verify", EXPFILL } },
        { &spark_ei.finding_gap, { "spark.expert.gap", PI_SEQUENCE, PI_WARN,
          "Bytes missing from the capture", EXPFILL } },
        { &spark_ei.finding_ota, { "spark.expert.ota", PI_PROTOCOL, PI_WARN,
          "Firmware update problem", EXPFILL } },
        { &spark_ei.finding_counter, { "spark.expert.counter", PI_SEQUENCE, PI_WARN,
          "Message id or token out of sequence", EXPFILL } },
        { &spark_ei.finding_decrypt, { "spark.expert.decrypt", PI_DECRYPTION, PI_ERROR,
          "A frame that should decrypt does not", EXPFILL } },
        { &spark_ei.gap, { "spark.expert.missing_bytes", PI_SEQUENCE, PI_WARN,
          "Bytes before this segment are missing", EXPFILL } },
        { &spark_ei.retransmitted, { "spark.expert.retransmitted", PI_SEQUENCE, PI_NOTE,
          "Retransmitted bytes", EXPFILL } },
        { &spark_ei.keyfile, { "spark.expert.keyfile", PI_DECRYPTION, PI_ERROR,
          "The keyfile was not loaded", EXPFILL } },
        { &spark_ei.released, { "spark.expert.released", PI_SEQUENCE, PI_NOTE,
          "Connections released (connection cap)", EXPFILL } },
        { &spark_ei.untracked, { "spark.expert.not_followed", PI_SEQUENCE, PI_WARN,
          "Connection not followed (connection cap)", EXPFILL } },
        { &spark_ei.closed, { "spark.expert.closed", PI_SEQUENCE, PI_CHAT,
          "Connection closed", EXPFILL } },
    };

    expert_module_t *expert_spark;

    /* every id starts unregistered (-1, and EI_INIT is {-1, -1}) */
    memset(&spark_hf, 0xff, sizeof spark_hf);
    memset(&spark_ett, 0xff, sizeof spark_ett);
    memset(&spark_ei, 0xff, sizeof spark_ei);
    proto_spark = proto_register_protocol("Spark Cloud Protocol", "Spark", "spark");
    proto_register_field_array(proto_spark, hf, array_length(hf));
    proto_register_subtree_array(ett, array_length(ett));
    expert_spark = expert_register_protocol(proto_spark);
    expert_register_field_array(expert_spark, ei, array_length(ei));
}
