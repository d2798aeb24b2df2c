/* Engine integration for the Vulkan backend: run PatternKV on the application's own VkInstance,
 * VkPhysicalDevice, VkDevice and compute-capable queue (game engines own their device).
 *
 *   pkv_vulkan_external ext = {.struct_size = sizeof ext, .instance = inst, .physical_device = phys,
 *                              .device = dev, .queue = queue, .queue_family_index = family};
 *   pkv_context_params p = pkv_context_params_default();
 *   p.vulkan_external = &ext;   (the backend is then Vulkan)
 *
 * Synchronization contract (the recorded calls further down have their own, written there):
 * - The handles stay owned by the application and must outlive the PatternKV context; the library
 *   never destroys them. Free the PatternKV context (and its caches) before destroying the device.
 * - Every synchronous PatternKV call submits its own command buffers to `queue` and waits on its
 *   own fence before it returns: when it returns, its device work is complete. The library never
 *   calls vkQueueWaitIdle or vkDeviceWaitIdle; a submission of the library's on `queue` runs after
 *   what the application submitted before it (queue order), so the wait may include that work.
 * - vkQueueSubmit on one queue must be externally synchronized (Vulkan rule): the application must
 *   not submit to `queue` from another thread while a PatternKV call runs. Use `queue_mutex_lock` /
 *   `queue_mutex_unlock` (optional) to have the library take the engine's queue lock around its submits.
 * - The library's cache lives in its own allocations on `device`; the application never needs a
 *   barrier on them.
 * - The device needs no extension or feature; the queue family must support compute; the instance
 *   and the device must be Vulkan 1.1 or newer (api_version below). */
#ifndef PATTERNKV_VULKAN_H
#define PATTERNKV_VULKAN_H

#include "patternkv.h"

#include <vulkan/vulkan_core.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pkv_vulkan_external {
    uint32_t struct_size;              /* sizeof(pkv_vulkan_external) (stable ABI, patternkv.h) */
    VkInstance instance;               /* required */
    VkPhysicalDevice physical_device;  /* required: the device `device` was created from */
    VkDevice device;                   /* required */
    VkQueue queue;                     /* required: a queue of queue_family_index */
    uint32_t queue_family_index;       /* must support VK_QUEUE_COMPUTE_BIT */
    /* NULL: the library loads libvulkan.so.1 itself. Else the loader the application uses. */
    PFN_vkGetInstanceProcAddr get_instance_proc_addr;
    /* Optional: called around each of the library's vkQueueSubmit calls. */
    void (*queue_mutex_lock)(void *user);
    void (*queue_mutex_unlock)(void *user);
    void *queue_mutex_user;
    /* The VkApplicationInfo.apiVersion `instance` was created with: at least VK_API_VERSION_1_1 (the
     * library calls Vulkan 1.1 functions and uses SPIR-V 1.3), else pkv_context_create fails with
     * PKV_ERR_INVALID_ARGUMENT; the physical device must support 1.1 too. Added after 0.1.0: a struct
     * of 0.1.0's size (without it) is not checked. */
    uint32_t api_version;
} pkv_vulkan_external;

/* ---- synchronous calls on application buffers ------------------------------------------------
 * pkv_append / pkv_attention with K, V, q and out in the application's VkBuffers (created on
 * `device`, usage TRANSFER_SRC for inputs, TRANSFER_DST for out). Each range is given as (buffer,
 * offset, size): size is the bytes of the range the application owns from offset (VK_WHOLE_SIZE is
 * not accepted) and must hold what the call reads or writes, else PKV_ERR_INVALID_ARGUMENT.
 * K and V: [n_tokens][n_kv_heads][head_dim] of dtype. q: [n_seqs][q_len][n_q_heads][head_dim] of
 * params->q_dtype; out: the same shape in fp32. k_new/v_new in params are not supported here.
 *
 * Each call submits to `queue` and waits for its own fence: the K/V (or q) are copied and converted
 * on the device and checked (status word below); the call then reads that word back and returns
 * PKV_ERR_NONFINITE with nothing stored when a value is NaN, Inf or beyond fp16 range. The append
 * itself then runs as pkv_append's device part: its window write is recorded with the next op, a
 * mining or flush is submitted and waited for. All rows of all heads are copied by one command.
 * Writes the application submitted to `queue` before the call are seen (the first command buffer
 * starts with a barrier from all memory writes); writes on other queues must be complete. When
 * pkv_vulkan_attention returns, `out` is written and available to later commands on `queue`. */
PKV_API pkv_status pkv_vulkan_append(pkv_cache *cache, pkv_seq seq, uint32_t layer, uint32_t n_tokens, VkBuffer k,
                                     VkDeviceSize k_offset, VkDeviceSize k_size, VkBuffer v, VkDeviceSize v_offset,
                                     VkDeviceSize v_size, pkv_dtype dtype);
PKV_API pkv_status pkv_vulkan_attention(pkv_cache *cache, const pkv_attention_params *params, VkBuffer q,
                                        VkDeviceSize q_offset, VkDeviceSize q_size, VkBuffer out,
                                        VkDeviceSize out_offset, VkDeviceSize out_size);
/* Batch append: n_tokens tokens to each of the n_seqs sequences seqs[] (distinct) of one layer, as one
 * call: K and V are [n_seqs][n_tokens][n_kv_heads][head_dim] of dtype (sequence i's tokens at
 * offset i * n_tokens * n_kv_heads * head_dim values), the ranges must hold all of them. The cache
 * ends up as after pkv_vulkan_append of each sequence in turn (same values, bit for bit), with one
 * copy command, one conversion dispatch and one window write for all sequences, and one flush op of
 * the windows that fill. Errors as pkv_vulkan_append's (a sequence given twice:
 * PKV_ERR_INVALID_ARGUMENT); all are checked before anything is stored. */
PKV_API pkv_status pkv_vulkan_append_batch(pkv_cache *cache, const pkv_seq *seqs, uint32_t n_seqs, uint32_t layer,
                                           uint32_t n_tokens, VkBuffer k, VkDeviceSize k_offset, VkDeviceSize k_size,
                                           VkBuffer v, VkDeviceSize v_offset, VkDeviceSize v_size, pkv_dtype dtype);

/* ---- recorded calls: PatternKV's work in the application's command buffer -----------------------
 * pkv_vulkan_cmd_append and pkv_vulkan_cmd_attention do what the synchronous calls do, but record
 * every command into `cmd`, a primary command buffer of the application in the recording state,
 * allocated from a pool of `queue_family_index`, and return without submitting or waiting for
 * anything. The application submits `cmd` (to any queue of that family) when it wants: a whole
 * decode step of every layer can be one command buffer and one submit:
 *
 *   for l in layers:
 *       app: record the layer's QKV projection into k_buf, v_buf, q_buf (+ RoPE)
 *       app: barrier  (its shader writes -> TRANSFER_READ, see "Barriers")
 *       pkv_vulkan_cmd_append(cache, cmd, seq, l, 1, k_buf, ..., v_buf, ..., PKV_F32);
 *       pkv_vulkan_cmd_attention(cache, cmd, &params_l, q_buf, ..., out_buf, ...);
 *       app: barrier  (TRANSFER_WRITE -> its shader reads of out), then the rest of the layer
 *   vkEndCommandBuffer(cmd); vkQueueSubmit(queue, ..., fence);   (once per step)
 *
 * Decided at record time, on the host, from what the host already knows: sequence lengths, block
 * tables, pool slots, which windows fill and are flushed, new bank patterns, split counts,
 * mining of a first prompt, arena growth (recorded as copies into `cmd`). Decided on the device:
 * every value check, the conversion to fp16, k-means, pattern assignment, quantization. So the
 * cache's host state already includes the recorded tokens when the call returns; attention of a
 * layer recorded after its append (in the same or a later command buffer) sees them.
 *
 * Status word. The device checks the values (NaN, Inf, or |x| > 65504 in K/V; NaN or Inf in q).
 * A value that fails is stored as 0 (with its neighbour of the same pair), the flag is ORed into
 * the context's status word and its lowest failing layer kept: PKV_VULKAN_STATUS_KV_NONFINITE,
 * PKV_VULKAN_STATUS_Q_NONFINITE. Read it (after the command buffer completed: fence) with
 * pkv_vulkan_read_status. After a failed check the cache is consistent and usable: the failing
 * tokens are stored with 0 for the bad values (their positions count; a flush that included them
 * quantized the zeros), every other layer, token and sequence is as it would be, attention stays
 * finite (a q that failed reads as 0: uniform weights over the tokens). Recover by dropping the
 * affected sequence (pkv_seq_free, after the command buffer completed) and recomputing it, or by
 * continuing from a fork taken before the step (pkv_seq_fork is cheap: copy-on-write); the status
 * word says which layer first failed. The synchronous calls keep a separate word and never touch
 * the recorded one.
 *
 * Barriers. The library orders its own commands. A recorded call starts with a barrier from every
 * earlier compute and transfer command in `cmd` (COMPUTE_SHADER | TRANSFER writes -> COMPUTE_SHADER |
 * TRANSFER reads and writes), except where its first commands touch none of the memory the library's
 * last command uses: a recorded append ends with its one dispatch, the conversion of K/V into the
 * window rows, and an attention with its copy of out, both without a barrier after them; the next
 * append's copies (into the other of two staging areas) overlap either, the next attention's copy
 * of q and table uploads (into its scratch) overlap an append's conversion; the barrier after those
 * copies orders the open work before everything that follows. The first call recorded into a
 * command buffer always starts with the barrier. So PatternKV calls recorded one after another
 * (append of layer l, appends of the other sequences, attention of layer l reading them, the next
 * layer, ...) need nothing between them. A decode step at batch 1 records per layer 3 dispatches
 * (K/V conversion, attention's two kernels, which convert and check q where they read it), 4 barriers
 * and 4 transfers (copy of K/V, copy of q, the copy of the sequences' tables from their device copy,
 * copy of out; the first layer's attention of a step also uploads its plan's descriptors, which the
 * next layers of the same command buffer find in place; the append's row table of 2 x n_kv_heads
 * rows rides in push constants up to 10 heads), 18 commands with the binds and push constants; a
 * batch of B sequences appended by one pkv_vulkan_cmd_append_batch records the same (its row table
 * rides in the push constants as a rule, a base per sequence, up to 16 sequences whose kv heads'
 * windows lie at one stride, as the pool places them; else it is uploaded: 6 transfers) (each
 * further sequence appended by its own
 * pkv_vulkan_cmd_append adds 1 dispatch, 1 barrier and 2 transfers; pkv bench --decode-step and
 * pkv-record-cost count them). The calls read K, V and q with
 * vkCmdCopyBuffer (stage TRANSFER, access TRANSFER_READ) and write out with vkCmdCopyBuffer (TRANSFER
 * / TRANSFER_WRITE). The application adds, before a call, a barrier from its writes of K/V/q to
 * TRANSFER_READ (for example COMPUTE_SHADER/SHADER_WRITE -> TRANSFER/TRANSFER_READ), and after
 * pkv_vulkan_cmd_attention a barrier from TRANSFER/TRANSFER_WRITE to its reads of out (or to
 * HOST/HOST_READ before mapping it). Its own later writes into K/V/q buffers the library still
 * reads need TRANSFER/TRANSFER_READ as their source (write-after-read). The library's own memory
 * never needs a barrier from the application. The recorded commands bind compute pipelines,
 * descriptor set 0 and push constants: rebind the application's after them.
 *
 * Lifetimes and what may not be mixed.
 * - The cache and the context must outlive every command buffer with recorded PatternKV commands
 *   until it completed (or was reset without being submitted); pkv_cache_free, pkv_seq_free and
 *   pkv_context_free must not be called while one is pending. Submit each recorded command buffer
 *   once, in the order the calls were recorded (recording decided the cache's state in that order),
 *   to one queue (the barriers of a call order it after the library's commands recorded before it,
 *   which holds in submission order on one queue; across queues, order them with semaphores).
 *   VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT is fine; a command buffer may be reset and recorded
 *   again once its submission completed.
 * - Device memory the library releases once a call was recorded on the context (arenas and scratch
 *   it outgrows, the arenas of a freed cache) is kept until the context is freed, since a pending
 *   command buffer may still use it; growth is by doubling, so at most about as much again. Size
 *   things up front (pkv_context_params.device_page_bytes, pkv_prewarm, a first step) so that a
 *   decode loop does not grow them.
 * - Synchronous calls on the context (pkv_append, pkv_attention, pkv_read_kv, save, ...) wait only
 *   for their own work: do not make them while a recorded command buffer is pending.
 * - When a recorded call returns an error, parts of it may already be in `cmd`: do not submit
 *   `cmd` (reset it) and drop the sequences recorded into it (pkv_seq_free); errors at record time
 *   are host or device out-of-memory, a pipeline that could not be built (pkv_prewarm builds them
 *   all first), budget, or argument errors (those are found before anything is recorded).
 *
 * Threads. As for every call (README: Threads), a context and its caches are used by one thread at
 * a time; the application must not record into `cmd` from another thread during a call (Vulkan's
 * rule for command buffers). Recording never touches `queue`, so the engine may submit other work
 * to it meanwhile. Recording cost on the host does not grow with the context: attention keeps each
 * sequence's block table (per layer) in device memory and copies it into its scratch with one copy
 * region per sequence, uploading (vkCmdUpdateBuffer) only the slots of blocks added since its last
 * call (a window flush adds one per kv head) and a sequence's bank-chunk and window words when they
 * changed; its plan's descriptors once per command buffer and plan (a later layer's attention with
 * the same plan, recorded after the last one into the same command buffer, uploads nothing); no
 * allocation of Vulkan objects once the pipelines exist (pkv_prewarm) and the library's buffers
 * have grown to their working size (a sequence's device table grows by doubling, from 16 blocks).
 * A decode step's append (one token per sequence, into windows it does not fill) skips the general
 * append planner: it is the window write alone, the same rows in the same slots; attention reuses
 * its split plan while the sequences' lengths are unchanged (every layer of a step after the first).
 * Neither changes what is recorded.
 * Since recording decides what the device copy holds, a command buffer that is not submitted after
 * a call succeeded leaves the tables of the sequences it recorded behind: as for the appends, drop
 * those sequences (pkv_seq_free) rather than reuse them. Binds: every call binds its pipeline,
 * descriptor set and push constants again at its first dispatch (the application may bind its own
 * between two calls), and only what changes after that within the call. */
PKV_API pkv_status pkv_vulkan_cmd_append(pkv_cache *cache, VkCommandBuffer cmd, pkv_seq seq, uint32_t layer,
                                         uint32_t n_tokens, VkBuffer k, VkDeviceSize k_offset, VkDeviceSize k_size,
                                         VkBuffer v, VkDeviceSize v_offset, VkDeviceSize v_size, pkv_dtype dtype);
/* The recorded batch append (pkv_vulkan_append_batch's layout and result): a decode step of B sequences
 * records per layer one append for all of them (one copy command of K/V, one conversion dispatch
 * straight into the window rows, its row table in the push constants or one update) instead of B. The copy has one region for all
 * sequences' K and one for their V (a single one when V follows K in the same buffer), not two per
 * sequence, and the host work per further sequence is a few dozen words of tables (its window rows),
 * no allocation: pkv-record-cost (bench/tools/record_cost.c) measures it. An append longer than the
 * room left in a window (several rounds with flushes between them) is staged whole first and stays
 * correct, at the cost of one more copy; one into a partly filled window that would flush is refused
 * (PKV_ERR_UNSUPPORTED: the window's rows would be read back on the host). */
PKV_API pkv_status pkv_vulkan_cmd_append_batch(pkv_cache *cache, VkCommandBuffer cmd, const pkv_seq *seqs, uint32_t n_seqs,
                                               uint32_t layer, uint32_t n_tokens, VkBuffer k, VkDeviceSize k_offset,
                                               VkDeviceSize k_size, VkBuffer v, VkDeviceSize v_offset,
                                               VkDeviceSize v_size, pkv_dtype dtype);
PKV_API pkv_status pkv_vulkan_cmd_attention(pkv_cache *cache, VkCommandBuffer cmd, const pkv_attention_params *params,
                                            VkBuffer q, VkDeviceSize q_offset, VkDeviceSize q_size, VkBuffer out,
                                            VkDeviceSize out_offset, VkDeviceSize out_size);

enum { /* bits of the status word */
    PKV_VULKAN_STATUS_KV_NONFINITE = 1u << 0, /* a recorded append's K or V held NaN, Inf or |x| > 65504 */
    PKV_VULKAN_STATUS_Q_NONFINITE = 1u << 1,  /* a recorded attention's q held NaN or Inf */
};

/* Reads the context's status word of recorded calls (synchronous: one small submission to `queue`
 * and a wait on its own fence; call it after the recorded command buffers completed). *flags gets
 * the PKV_VULKAN_STATUS_* bits set since the last reset, *first_layer (may be NULL) the lowest layer
 * that failed a check (UINT32_MAX if none). reset != 0 clears the word afterwards. */
PKV_API pkv_status pkv_vulkan_read_status(pkv_cache *cache, uint32_t *flags, uint32_t *first_layer, int reset);

#ifdef __cplusplus
}
#endif
#endif /* PATTERNKV_VULKAN_H */
