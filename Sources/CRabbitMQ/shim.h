#ifndef REPRISE_CRABBITMQ_SHIM_H
#define REPRISE_CRABBITMQ_SHIM_H
// rabbitmq-c 0.12 moved its headers under rabbitmq-c/; Debian 12 ships 0.11 at the top level.
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#include <rabbitmq-c/ssl_socket.h>
#include <rabbitmq-c/framing.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#include <amqp_framing.h>
#endif

// amqp_login is variadic, which Swift cannot call: PLAIN login with user and password.
static inline amqp_rpc_reply_t reprise_amqp_login_plain(amqp_connection_state_t state, const char *vhost,
                                                      int channel_max, int frame_max, int heartbeat,
                                                      const char *user, const char *password) {
    return amqp_login(state, vhost, channel_max, frame_max, heartbeat, AMQP_SASL_METHOD_PLAIN, user, password);
}
#endif

#ifndef REPRISE_CRABBITMQ_CONSTANTS
#define REPRISE_CRABBITMQ_CONSTANTS
// Cast and shift macros are not visible to Swift: the values it needs, as constants.
static const amqp_method_number_t reprise_amqp_basic_ack_method = AMQP_BASIC_ACK_METHOD;
static const amqp_method_number_t reprise_amqp_basic_nack_method = AMQP_BASIC_NACK_METHOD;
static const amqp_method_number_t reprise_amqp_basic_return_method = AMQP_BASIC_RETURN_METHOD;
static const amqp_method_number_t reprise_amqp_channel_close_method = AMQP_CHANNEL_CLOSE_METHOD;
static const amqp_method_number_t reprise_amqp_channel_close_ok_method = AMQP_CHANNEL_CLOSE_OK_METHOD;
static const amqp_method_number_t reprise_amqp_connection_close_method = AMQP_CONNECTION_CLOSE_METHOD;
static const amqp_method_number_t reprise_amqp_connection_close_ok_method = AMQP_CONNECTION_CLOSE_OK_METHOD;
static const amqp_flags_t reprise_amqp_flag_content_type = AMQP_BASIC_CONTENT_TYPE_FLAG;
static const amqp_flags_t reprise_amqp_flag_headers = AMQP_BASIC_HEADERS_FLAG;
static const amqp_flags_t reprise_amqp_flag_delivery_mode = AMQP_BASIC_DELIVERY_MODE_FLAG;
static const amqp_flags_t reprise_amqp_flag_message_id = AMQP_BASIC_MESSAGE_ID_FLAG;
static const amqp_flags_t reprise_amqp_flag_timestamp = AMQP_BASIC_TIMESTAMP_FLAG;
static const amqp_flags_t reprise_amqp_flag_type = AMQP_BASIC_TYPE_FLAG;
#endif
