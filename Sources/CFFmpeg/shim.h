#pragma once
#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>
#include <libswscale/swscale.h>
#include <libavutil/avutil.h>
#include <libavutil/imgutils.h>
#include <libavutil/display.h>
#include <libavutil/error.h>
#include <libavutil/opt.h>
#include <errno.h>

// Function-like macros Swift cannot import.
static inline int hv_averror(int e) { return AVERROR(e); }
static inline int hv_averror_eagain(void) { return AVERROR(EAGAIN); }
static inline int hv_averror_eof(void) { return AVERROR_EOF; }
static inline int64_t hv_nopts_value(void) { return AV_NOPTS_VALUE; }
static inline AVRational hv_time_base_q(void) { return AV_TIME_BASE_Q; }
static inline int hv_av_time_base(void) { return AV_TIME_BASE; }
static inline void hv_error_string(int errnum, char *buf, size_t size) { av_strerror(errnum, buf, size); }

// Cancellation of blocking reads: FFmpeg polls this flag (network reads return AVERROR_EXIT once set).
// `bytes`: what the demuxer has read so far, refreshed each time FFmpeg polls the callback (it polls
// while it waits for data), so a watchdog can tell a silent connection from one whose packets
// arrive but decode to nothing yet (waiting for a keyframe).
typedef struct { int stop; AVFormatContext *ctx; int64_t bytes; } hv_interrupt;
static int hv_interrupt_check(void *opaque) {
    hv_interrupt *flag = (hv_interrupt *)opaque;
    AVFormatContext *ctx = flag->ctx;
    if (ctx && ctx->pb) __atomic_store_n(&flag->bytes, ctx->pb->bytes_read, __ATOMIC_RELAXED);
    return __atomic_load_n(&flag->stop, __ATOMIC_ACQUIRE);
}
static inline int64_t hv_interrupt_bytes(hv_interrupt *flag) { return __atomic_load_n(&flag->bytes, __ATOMIC_RELAXED); }
static inline void hv_interrupt_set(hv_interrupt *flag) { __atomic_store_n(&flag->stop, 1, __ATOMIC_RELEASE); }
static inline int hv_interrupt_is_set(hv_interrupt *flag) { return __atomic_load_n(&flag->stop, __ATOMIC_ACQUIRE); }
// The context is about to be freed: the callback must not look at it again.
static inline void hv_interrupt_detach(hv_interrupt *flag) { flag->ctx = NULL; }
static inline void hv_install_interrupt(AVFormatContext *ctx, hv_interrupt *flag) {
    flag->ctx = ctx;
    ctx->interrupt_callback.callback = hv_interrupt_check;
    ctx->interrupt_callback.opaque = flag;
}
static inline int hv_averror_exit(void) { return AVERROR_EXIT; }
static inline int hv_averror_invaliddata(void) { return AVERROR_INVALIDDATA; }

// Lets swscale write straight into memory owned by Swift: a buffer reference that frees nothing.
static void hv_free_nothing(void *opaque, uint8_t *data) { (void)opaque; (void)data; }
static inline AVBufferRef *hv_borrow_buffer(uint8_t *data, size_t size) {
    return av_buffer_create(data, size, hv_free_nothing, NULL, 0);
}
static inline int hv_averror_decoder_not_found(void) { return AVERROR_DECODER_NOT_FOUND; }
static inline int hv_averror_protocol_not_found(void) { return AVERROR_PROTOCOL_NOT_FOUND; }
