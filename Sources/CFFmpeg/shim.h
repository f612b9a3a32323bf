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
