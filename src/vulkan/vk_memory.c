/* Device memory: pkv_bufs are ranges sub-allocated from a few large device-local allocations
 * ("pages", first fit, coalescing free list), never one allocation per block. Transfers go
 * through one reusable host-visible staging ring recorded into the current command buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "internal.h"
#include "parallel.h"
#include "profile.h"
#include "vk_internal.h"

#define PAGE_BYTES_DEFAULT (64ull << 20)
#define RING_BYTES (64ull << 20)
#define RING_BYTES_MIN (64ull << 10)
/* The ring a context starts with: pinning host-visible memory is the driver's work per page (the
 * H200 took 15-25 ms for 64 MiB, a fifth of a warm start-up), and a first small prompt, a decode
 * step's appends and every read-back of a small cache fit in this; the first op that fills a half
 * grows it to the configured size (ring_grow). */
#define RING_BYTES_START (4ull << 20)

static int find_memory_type(const pkv_vk *vk, uint32_t bits, VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid)
{
    for (uint32_t i = 0; i < vk->mem_props.memoryTypeCount; i++) {
        VkMemoryPropertyFlags fl = vk->mem_props.memoryTypes[i].propertyFlags;
        if ((bits & (1u << i)) && (fl & want) == want && !(fl & avoid)) return (int)i;
    }
    return -1;
}

static const VkBufferUsageFlags BUF_USAGE =
    VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;

/* A VkBuffer with its own memory. host: host-visible (staging) instead of device-local. */
static VkResult make_buffer(pkv_vk *vk, VkDeviceSize size, int host, VkBuffer *buf, VkDeviceMemory *mem)
{
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size, .usage = BUF_USAGE,
                              .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vk->f.vkCreateBuffer(vk->device, &bci, NULL, buf);
    if (r != VK_SUCCESS) return r;
    VkMemoryRequirements req;
    vk->f.vkGetBufferMemoryRequirements(vk->device, *buf, &req);
    int type;
    if (host) {
        const VkMemoryPropertyFlags hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
        type = find_memory_type(vk, req.memoryTypeBits, hv | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0);
        if (type < 0) type = find_memory_type(vk, req.memoryTypeBits, hv, 0);
    } else {
        type = find_memory_type(vk, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
        if (type < 0) type = find_memory_type(vk, req.memoryTypeBits, 0, 0);
    }
    if (type < 0) r = VK_ERROR_OUT_OF_DEVICE_MEMORY;
    VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                                .memoryTypeIndex = (uint32_t)type};
    if (r == VK_SUCCESS && pkv_fault_device_alloc()) r = VK_ERROR_OUT_OF_DEVICE_MEMORY; /* tests only */
    if (r == VK_SUCCESS) r = vk->f.vkAllocateMemory(vk->device, &mai, NULL, mem);
    if (r == VK_SUCCESS) r = vk->f.vkBindBufferMemory(vk->device, *buf, *mem, 0);
    if (r != VK_SUCCESS) {
        vk->f.vkDestroyBuffer(vk->device, *buf, NULL);
        *buf = VK_NULL_HANDLE;
        if (*mem) vk->f.vkFreeMemory(vk->device, *mem, NULL);
        *mem = VK_NULL_HANDLE;
    }
    return r;
}

/* The staging ring of `size` bytes (a multiple of 256): buffer, memory, mapping, its halves and its
 * view for dispatches. Nothing is changed on failure. */
static VkResult ring_make(pkv_vk *vk, VkDeviceSize size)
{
    VkBuffer buf = VK_NULL_HANDLE;
    VkDeviceMemory mem = VK_NULL_HANDLE;
    uint8_t *map = NULL;
    VkResult r = make_buffer(vk, size, 1, &buf, &mem);
    if (r == VK_SUCCESS) r = vk->f.vkMapMemory(vk->device, mem, 0, VK_WHOLE_SIZE, 0, (void **)&map);
    if (r != VK_SUCCESS) {
        if (buf) vk->f.vkDestroyBuffer(vk->device, buf, NULL);
        if (mem) vk->f.vkFreeMemory(vk->device, mem, NULL);
        return r;
    }
    if (vk->ring_buf) vk->f.vkDestroyBuffer(vk->device, vk->ring_buf, NULL);
    if (vk->ring_mem) vk->f.vkFreeMemory(vk->device, vk->ring_mem, NULL);
    vk->ring_buf = buf, vk->ring_mem = mem, vk->ring_map = map;
    vk->ring_size = size;
    vk->ring_half = size / 2 & ~255ull;
    vk->ring_page = (pkv_vk_page){.buf = buf, .size = size};
    vk->ring_view = (pkv_buf){.page = &vk->ring_page, .off = 0, .size = size};
    vk->ring_used = (VkDeviceSize)vk->cur * vk->ring_half;
    return VK_SUCCESS;
}

pkv_status pkv_vk_memory_init(pkv_vk *vk, const pkv_context_params *p)
{
    VkDeviceSize a = vk->props.limits.minStorageBufferOffsetAlignment;
    vk->align = a > 256 ? a : 256;
    vk->page_bytes = p->device_page_bytes ? (p->device_page_bytes + vk->align - 1) / vk->align * vk->align : PAGE_BYTES_DEFAULT;
    const char *lim = getenv("PKV_VULKAN_MEMORY_LIMIT"); /* bytes; for testing out-of-memory paths */
    vk->device_limit = lim && *lim ? strtoull(lim, NULL, 10) : 0;

    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = vk->queue_family};
    if (vk->f.vkCreateCommandPool(vk->device, &pci, NULL, &vk->cmd_pool) != VK_SUCCESS)
        return pkv_fail(NULL, PKV_ERR_DEVICE, "vulkan: vkCreateCommandPool failed");
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = vk->cmd_pool,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 2};
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if (vk->f.vkAllocateCommandBuffers(vk->device, &cai, vk->cbs) != VK_SUCCESS ||
        vk->f.vkCreateFence(vk->device, &fci, NULL, &vk->fences[0]) != VK_SUCCESS ||
        vk->f.vkCreateFence(vk->device, &fci, NULL, &vk->fences[1]) != VK_SUCCESS)
        return pkv_fail(NULL, PKV_ERR_DEVICE, "vulkan: command buffer or fence creation failed");
    vk->cur = 0;
    vk->cb = vk->cbs[0], vk->fence = vk->fences[0];
    vk->ring_target = p->staging_bytes ? (p->staging_bytes < RING_BYTES_MIN ? RING_BYTES_MIN : (p->staging_bytes + 255) & ~255ull)
                                       : RING_BYTES;
    if (vk->ring_target > vk->props.limits.maxStorageBufferRange) /* window writes bind it as a storage buffer */
        vk->ring_target = vk->props.limits.maxStorageBufferRange & ~255ull;
    const double tr = pkv_prof_start();
    const char *start_env = getenv("PKV_VULKAN_STAGING_START"); /* bytes; tests (a ring that grows early) */
    VkDeviceSize start = start_env && *start_env ? strtoull(start_env, NULL, 10) : RING_BYTES_START;
    start = start < RING_BYTES_MIN ? RING_BYTES_MIN : (start + 255) & ~255ull;
    if (ring_make(vk, vk->ring_target < start ? vk->ring_target : start) != VK_SUCCESS)
        return pkv_fail(NULL, PKV_ERR_OUT_OF_DEVICE_MEMORY, "vulkan: could not allocate the staging ring");
    vk->ring_ms = tr > 0 ? (pkv_prof_start() - tr) * 1e3 : 0.0;
    VkDescriptorPoolSize ps = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .descriptorCount = PKV_VK_BINDINGS * 256};
    VkDescriptorPoolCreateInfo dpi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = 256,
                                      .poolSizeCount = 1, .pPoolSizes = &ps};
    if (vk->f.vkCreateDescriptorPool(vk->device, &dpi, NULL, &vk->desc_pool) != VK_SUCCESS)
        return pkv_fail(NULL, PKV_ERR_DEVICE, "vulkan: vkCreateDescriptorPool failed");
    uint32_t fam_n = 0;
    vk->f.vkGetPhysicalDeviceQueueFamilyProperties(vk->phys, &fam_n, NULL);
    VkQueueFamilyProperties q[16];
    if (fam_n > 16) fam_n = 16;
    vk->f.vkGetPhysicalDeviceQueueFamilyProperties(vk->phys, &fam_n, q);
    if (vk->queue_family < fam_n && q[vk->queue_family].timestampValidBits) {
        uint32_t bits = q[vk->queue_family].timestampValidBits;
        vk->ts_mask = bits >= 64 ? ~0ull : (1ull << bits) - 1;
        VkQueryPoolCreateInfo qpi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                     .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = 2};
        if (vk->f.vkCreateQueryPool(vk->device, &qpi, NULL, &vk->query_pool) != VK_SUCCESS) vk->query_pool = VK_NULL_HANDLE;
    }
    pkv_status s = pkv_vk_buf_alloc(vk, 256, &vk->dummy);
    if (s == PKV_OK) s = pkv_vk_buf_alloc(vk, 256, &vk->status);
    if (s == PKV_OK) s = pkv_vk_begin(vk);
    if (s == PKV_OK) { /* flags 0, lowest failing layer "none" */
        vk->f.vkCmdFillBuffer(vk->cb, vk->status->page->buf, vk->status->off + 4, 4, UINT32_MAX);
        vk->f.vkCmdFillBuffer(vk->cb, vk->status->page->buf, vk->status->off + 12, 4, UINT32_MAX);
        s = pkv_vk_finish(vk);
    }
    return s;
}

void pkv_vk_memory_destroy(pkv_vk *vk)
{
    if (!vk->device) return;
    vk->recorded_once = vk->external = 0; /* the context is freed: nothing is pending any more */
    if (vk->scratch) pkv_vk_buf_free(vk, vk->scratch);
    if (vk->staged) pkv_vk_buf_free(vk, vk->staged);
    if (vk->kv_raw) pkv_vk_buf_free(vk, vk->kv_raw);
    if (vk->dummy) pkv_vk_buf_free(vk, vk->dummy);
    if (vk->status) pkv_vk_buf_free(vk, vk->status);
    vk->scratch = vk->staged = vk->dummy = vk->status = vk->kv_raw = NULL;
    for (uint32_t i = 0; i < vk->n_retired; i++) pkv_vk_buf_free(vk, vk->retired[i]);
    free(vk->retired);
    vk->retired = NULL;
    vk->n_retired = 0;
    for (uint32_t i = 0; i < vk->n_ext_pools; i++) vk->f.vkDestroyDescriptorPool(vk->device, vk->ext_pools[i], NULL);
    free(vk->ext_pools);
    free(vk->ext_sets);
    for (uint32_t i = 0; i < vk->n_pages; i++) {
        pkv_vk_page *pg = vk->pages[i];
        vk->f.vkDestroyBuffer(vk->device, pg->buf, NULL);
        vk->f.vkFreeMemory(vk->device, pg->mem, NULL);
        free(pg->free_list);
        free(pg);
    }
    free(vk->pages);
    vk->pages = NULL;
    vk->n_pages = 0;
    if (vk->query_pool) vk->f.vkDestroyQueryPool(vk->device, vk->query_pool, NULL);
    if (vk->desc_pool) vk->f.vkDestroyDescriptorPool(vk->device, vk->desc_pool, NULL);
    if (vk->ring_buf) vk->f.vkDestroyBuffer(vk->device, vk->ring_buf, NULL);
    if (vk->ring_mem) vk->f.vkFreeMemory(vk->device, vk->ring_mem, NULL);
    for (int i = 0; i < 2; i++)
        if (vk->fences[i]) {
            if (vk->in_flight[i]) vk->f.vkWaitForFences(vk->device, 1, &vk->fences[i], VK_TRUE, UINT64_MAX);
            vk->f.vkDestroyFence(vk->device, vk->fences[i], NULL);
        }
    if (vk->cmd_pool) vk->f.vkDestroyCommandPool(vk->device, vk->cmd_pool, NULL);
    free(vk->pending);
    free(vk->regions);
    free(vk->host_tab);
    pkv_attn_plan_memo_free(&vk->attn_memo.plan);
}

/* ---- sub-allocation ---- */

static int free_list_insert(pkv_vk_page *pg, uint32_t at, pkv_vk_range r)
{
    if (pg->n_free == pg->cap_free) {
        uint32_t cap = pg->cap_free ? pg->cap_free * 2 : 16;
        pkv_vk_range *n = realloc(pg->free_list, cap * sizeof *n);
        if (!n) return -1;
        pg->free_list = n;
        pg->cap_free = cap;
    }
    memmove(pg->free_list + at + 1, pg->free_list + at, (pg->n_free - at) * sizeof *pg->free_list);
    pg->free_list[at] = r;
    pg->n_free++;
    return 0;
}

static int take_from(pkv_vk_page *pg, VkDeviceSize size, VkDeviceSize *off)
{
    for (uint32_t i = 0; i < pg->n_free; i++) {
        pkv_vk_range *r = &pg->free_list[i];
        if (r->size < size) continue;
        *off = r->off;
        r->off += size;
        r->size -= size;
        if (!r->size) {
            memmove(r, r + 1, (pg->n_free - i - 1) * sizeof *r);
            pg->n_free--;
        }
        pg->used += size;
        return 1;
    }
    return 0;
}

static void give_back(pkv_vk_page *pg, VkDeviceSize off, VkDeviceSize size)
{
    uint32_t i = 0;
    while (i < pg->n_free && pg->free_list[i].off < off) i++;
    pkv_vk_range *l = i > 0 ? &pg->free_list[i - 1] : NULL, *r = i < pg->n_free ? &pg->free_list[i] : NULL;
    pg->used -= size;
    if (l && l->off + l->size == off) {
        l->size += size;
        if (r && off + size == r->off) {
            l->size += r->size;
            memmove(r, r + 1, (pg->n_free - i - 1) * sizeof *r);
            pg->n_free--;
        }
        return;
    }
    if (r && off + size == r->off) {
        r->off = off;
        r->size += size;
        return;
    }
    /* Cannot fail to grow here without losing track of the range: that memory stays unused. */
    (void)free_list_insert(pg, i, (pkv_vk_range){off, size});
}

static pkv_status new_page(pkv_vk *vk, VkDeviceSize size, pkv_vk_page **out)
{
    if (vk->device_limit && vk->device_bytes + size > vk->device_limit)
        return pkv_fail(NULL, PKV_ERR_OUT_OF_DEVICE_MEMORY,
                        "vulkan: out of device memory (PKV_VULKAN_MEMORY_LIMIT %llu bytes reached)",
                        (unsigned long long)vk->device_limit);
    pkv_vk_page *pg = calloc(1, sizeof *pg);
    pkv_vk_page **pages = realloc(vk->pages, (vk->n_pages + 1) * sizeof *pages);
    if (!pg || !pages) {
        free(pg);
        if (pages) vk->pages = pages;
        return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "vulkan: out of host memory");
    }
    vk->pages = pages;
    VkResult r = make_buffer(vk, size, 0, &pg->buf, &pg->mem);
    if (r != VK_SUCCESS) {
        free(pg);
        return pkv_fail(NULL, PKV_ERR_OUT_OF_DEVICE_MEMORY, "vulkan: out of device memory allocating %llu bytes (VkResult %d)",
                        (unsigned long long)size, (int)r);
    }
    pg->size = size;
    if (free_list_insert(pg, 0, (pkv_vk_range){0, size}) != 0) {
        vk->f.vkDestroyBuffer(vk->device, pg->buf, NULL);
        vk->f.vkFreeMemory(vk->device, pg->mem, NULL);
        free(pg);
        return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "vulkan: out of host memory");
    }
    vk->pages[vk->n_pages++] = pg;
    vk->device_bytes += size;
    *out = pg;
    return PKV_OK;
}

pkv_status pkv_vk_buf_alloc(pkv_vk *vk, size_t bytes, pkv_buf **out)
{
    VkDeviceSize size = ((VkDeviceSize)(bytes ? bytes : 4) + vk->align - 1) / vk->align * vk->align;
    if (size > vk->props.limits.maxStorageBufferRange)
        return pkv_fail(NULL, PKV_ERR_OUT_OF_DEVICE_MEMORY,
                        "vulkan: %zu bytes exceed this device's largest storage buffer (%u bytes)", bytes,
                        vk->props.limits.maxStorageBufferRange);
    pkv_buf *b = calloc(1, sizeof *b);
    if (!b) return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "vulkan: out of host memory");
    pkv_vk_page *pg = NULL;
    VkDeviceSize off = 0;
    for (uint32_t i = 0; i < vk->n_pages && !pg; i++)
        if (take_from(vk->pages[i], size, &off)) pg = vk->pages[i];
    if (!pg) {
        pkv_status s = new_page(vk, size > vk->page_bytes ? size : vk->page_bytes, &pg);
        if (s != PKV_OK && size < vk->page_bytes) s = new_page(vk, size, &pg); /* a smaller page may still fit */
        if (s != PKV_OK) {
            free(b);
            return s;
        }
        take_from(pg, size, &off);
    }
    b->page = pg;
    b->off = off;
    b->size = size;
    /* Zero it, as the CPU backend does, so that untouched bytes agree between backends. */
    pkv_status s = pkv_vk_begin(vk);
    if (s == PKV_OK) {
        vk->f.vkCmdFillBuffer(vk->cb, pg->buf, off, size, 0);
        pkv_vk_barrier(vk);
        s = pkv_vk_submit_wait(vk);
    }
    if (s != PKV_OK) {
        pkv_vk_buf_free(vk, b);
        return s;
    }
    *out = b;
    return PKV_OK;
}

void pkv_vk_buf_free(pkv_vk *vk, pkv_buf *b)
{
    if (!b) return;
    if (vk->recorded_once) { /* an application's command buffer may still use it: kept until the context is freed */
        if (vk->n_retired == vk->cap_retired) {
            uint32_t cap = vk->cap_retired ? 2 * vk->cap_retired : 16;
            pkv_buf **r = realloc(vk->retired, cap * sizeof *r);
            if (r) vk->retired = r, vk->cap_retired = cap;
        }
        if (vk->n_retired < vk->cap_retired) {
            vk->retired[vk->n_retired++] = b;
            return;
        }
        free(b); /* out of host memory: the range stays unused rather than reused early */
        return;
    }
    pkv_vk_page *pg = b->page;
    give_back(pg, b->off, b->size);
    free(b);
    if (pg->used == 0 && vk->n_pages > 1) { /* release empty pages (arenas grow by alloc + copy + free) */
        for (uint32_t i = 0; i < vk->n_pages; i++)
            if (vk->pages[i] == pg) {
                vk->pages[i] = vk->pages[--vk->n_pages];
                break;
            }
        vk->f.vkDestroyBuffer(vk->device, pg->buf, NULL);
        vk->f.vkFreeMemory(vk->device, pg->mem, NULL);
        vk->device_bytes -= pg->size;
        free(pg->free_list);
        free(pg);
    }
}

/* Grows a per-context working buffer (scratch, staged) by doubling; its old contents are dropped. */
pkv_status pkv_vk_grow(pkv_vk *vk, pkv_buf **buf, size_t bytes)
{
    if (*buf && (*buf)->size >= bytes) return PKV_OK;
    size_t want = *buf ? (size_t)(*buf)->size : (1u << 20);
    while (want < bytes) want *= 2;
    if (want > vk->props.limits.maxStorageBufferRange && bytes <= vk->props.limits.maxStorageBufferRange)
        want = vk->props.limits.maxStorageBufferRange & ~(size_t)255;
    pkv_buf *nb = NULL;
    pkv_status s = pkv_vk_buf_alloc(vk, want, &nb);
    if (s != PKV_OK) return s;
    if (*buf) pkv_vk_buf_free(vk, *buf);
    *buf = nb;
    return PKV_OK;
}

pkv_status pkv_vk_scratch_reserve(pkv_vk *vk, size_t bytes)
{
    pkv_buf *was = vk->scratch;
    pkv_status s = pkv_vk_grow(vk, &vk->scratch, bytes);
    if (vk->scratch != was) pkv_vk_scratch_written(vk); /* a new buffer: what attention left there is gone */
    return s;
}

/* ---- recording and submitting ---- */

pkv_status pkv_vk_begin(pkv_vk *vk)
{
    pkv_vk_close_open(vk);
    if (vk->recording || vk->external) return PKV_OK;
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    if (vk->f.vkBeginCommandBuffer(vk->cb, &bi) != VK_SUCCESS)
        return pkv_fail(NULL, PKV_ERR_DEVICE, "vulkan: vkBeginCommandBuffer failed");
    vk->recording = 1;
    pkv_vk_unbind(vk);
    return PKV_OK;
}

void pkv_vk_op_start(pkv_vk *vk)
{
    if (vk->external && !vk->after_barrier) pkv_vk_barrier(vk);
    vk->after_barrier = 0;
    vk->open_work = PKV_VK_OPEN_NONE;
}

void pkv_vk_op_start_overlap(pkv_vk *vk)
{
    if (vk->external && (vk->open_work == PKV_VK_OPEN_SCATTER_1 || vk->open_work == PKV_VK_OPEN_SCATTER_2))
        vk->open_work = PKV_VK_OPEN_NONE, vk->after_barrier = 0;
    else pkv_vk_op_start(vk);
}

void pkv_vk_close_open(pkv_vk *vk)
{
    if (!vk->external || !vk->open_work) return;
    vk->open_work = PKV_VK_OPEN_NONE;
    pkv_vk_barrier(vk);
    vk->after_barrier = 1;
}

void pkv_vk_op_end_barrier(pkv_vk *vk)
{
    pkv_vk_barrier(vk);
    /* Recorded mode: what the library records before the next op_start (arena growth, chunk
     * copies) ends with a barrier of its own, so this one still separates the ops. */
    vk->after_barrier = vk->external;
}

void pkv_vk_barrier(pkv_vk *vk)
{
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                           VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT |
                                           VK_ACCESS_HOST_READ_BIT};
    const VkPipelineStageFlags st = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    vk->f.vkCmdPipelineBarrier(vk->cb, st, st | VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
}

static void wait_other(pkv_vk *vk);
static pkv_status ring_turn(pkv_vk *vk);

pkv_status pkv_vk_submit_wait(pkv_vk *vk)
{
    if (vk->external) /* the application submits its command buffer; nothing can be read back now */
        return vk->n_pending ? pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "vulkan: a recorded call cannot read device memory back")
                             : PKV_OK;
    if (!vk->recording) {
        wait_other(vk);
        vk->ring_used = (VkDeviceSize)vk->cur * vk->ring_half;
        return PKV_OK;
    }
    if (vk->n_pending) pkv_vk_barrier(vk); /* transfer writes -> host reads */
    vk->recording = 0;
    vk->deferred_windows = 0;
    pkv_status s = PKV_OK;
    if (vk->f.vkEndCommandBuffer(vk->cb) != VK_SUCCESS) s = pkv_fail(NULL, PKV_ERR_DEVICE, "vulkan: vkEndCommandBuffer failed");
    if (s == PKV_OK) {
        VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &vk->cb};
        const double tw = pkv_prof_start();
        if (vk->ext_lock) vk->ext_lock(vk->ext_lock_user);
        VkResult r = vk->f.vkQueueSubmit(vk->queue, 1, &si, vk->fence);
        if (vk->ext_unlock) vk->ext_unlock(vk->ext_lock_user);
        if (r == VK_SUCCESS) r = vk->f.vkWaitForFences(vk->device, 1, &vk->fence, VK_TRUE, UINT64_MAX);
        pkv_prof_add(PKV_PROF_WAIT, tw);
        pkv_prof_submit();
        vk->f.vkResetFences(vk->device, 1, &vk->fence);
        if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY)
            s = pkv_fail(NULL, PKV_ERR_OUT_OF_DEVICE_MEMORY, "vulkan: out of device memory at submit");
        else if (r != VK_SUCCESS)
            s = pkv_fail(NULL, PKV_ERR_DEVICE, "vulkan: submit or wait failed (VkResult %d)", (int)r);
    }
    const double tc = pkv_prof_start();
    if (s == PKV_OK)
        for (uint32_t i = 0; i < vk->n_pending; i++)
            memcpy(vk->pending[i].dst, vk->ring_map + vk->pending[i].ring_off, vk->pending[i].bytes);
    pkv_prof_add(PKV_PROF_STAGE, tc);
    vk->n_pending = 0;
    vk->f.vkResetCommandBuffer(vk->cb, 0);
    wait_other(vk); /* done too: the fence covers every earlier submission of the queue */
    vk->ring_used = (VkDeviceSize)vk->cur * vk->ring_half;
    return s;
}

pkv_status pkv_vk_kick(pkv_vk *vk)
{
    if (vk->external || !vk->recording || vk->n_pending || vk->deferred_windows < PKV_VK_KICK_WINDOWS) return PKV_OK;
    return ring_turn(vk);
}

/* Ring turns: the other command buffer's submission, waited for (at once when the queue is idle). */
static void wait_other(pkv_vk *vk)
{
    const uint32_t o = vk->cur ^ 1u;
    if (!vk->in_flight[o]) return;
    const double tw = pkv_prof_start();
    vk->f.vkWaitForFences(vk->device, 1, &vk->fences[o], VK_TRUE, UINT64_MAX);
    pkv_prof_add(PKV_PROF_WAIT, tw);
    vk->f.vkResetFences(vk->device, 1, &vk->fences[o]);
    vk->f.vkResetCommandBuffer(vk->cbs[o], 0);
    vk->in_flight[o] = 0;
}

/* The current half of the ring is full: what is recorded is submitted without a wait (with a full
 * wait when it reads data back) and recording goes on in the other command buffer and half. */
static pkv_status ring_turn(pkv_vk *vk)
{
    if (vk->n_pending || !vk->recording) {
        pkv_status s = pkv_vk_submit_wait(vk);
        return s == PKV_OK ? pkv_vk_begin(vk) : s;
    }
    vk->recording = 0;
    if (vk->f.vkEndCommandBuffer(vk->cb) != VK_SUCCESS) return pkv_fail(NULL, PKV_ERR_DEVICE, "vulkan: vkEndCommandBuffer failed");
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &vk->cb};
    const double tw = pkv_prof_start();
    if (vk->ext_lock) vk->ext_lock(vk->ext_lock_user);
    VkResult r = vk->f.vkQueueSubmit(vk->queue, 1, &si, vk->fence);
    if (vk->ext_unlock) vk->ext_unlock(vk->ext_lock_user);
    pkv_prof_add(PKV_PROF_WAIT, tw);
    pkv_prof_submit();
    if (r != VK_SUCCESS) {
        vk->f.vkResetCommandBuffer(vk->cb, 0);
        return pkv_fail(NULL, r == VK_ERROR_OUT_OF_DEVICE_MEMORY ? PKV_ERR_OUT_OF_DEVICE_MEMORY : PKV_ERR_DEVICE,
                        "vulkan: submit failed (VkResult %d)", (int)r);
    }
    vk->in_flight[vk->cur] = 1;
    vk->deferred_windows = 0;
    vk->cur ^= 1u;
    vk->cb = vk->cbs[vk->cur], vk->fence = vk->fences[vk->cur];
    if (vk->in_flight[vk->cur]) { /* the previous turn of this half */
        const double tw2 = pkv_prof_start();
        vk->f.vkWaitForFences(vk->device, 1, &vk->fence, VK_TRUE, UINT64_MAX);
        pkv_prof_add(PKV_PROF_WAIT, tw2);
        vk->f.vkResetFences(vk->device, 1, &vk->fence);
        vk->f.vkResetCommandBuffer(vk->cb, 0);
        vk->in_flight[vk->cur] = 0;
    }
    vk->ring_used = (VkDeviceSize)vk->cur * vk->ring_half;
    return pkv_vk_begin(vk);
}

pkv_status pkv_vk_finish(pkv_vk *vk)
{
    if (vk->external) return pkv_vk_submit_wait(vk);
    pkv_status s = pkv_vk_submit_wait(vk);
    vk->f.vkResetDescriptorPool(vk->device, vk->desc_pool, 0);
    vk->last_set = VK_NULL_HANDLE;
    return s;
}

void pkv_vk_abandon(pkv_vk *vk)
{
    if (vk->external) { /* what is recorded stays in the application's command buffer (see the header) */
        vk->n_pending = 0;
        return;
    }
    if (vk->recording) {
        vk->f.vkEndCommandBuffer(vk->cb);
        vk->f.vkResetCommandBuffer(vk->cb, 0);
        vk->recording = 0;
    }
    wait_other(vk); /* a ring turn's part of the op runs; its descriptor sets are freed below */
    vk->n_pending = 0;
    vk->ring_used = (VkDeviceSize)vk->cur * vk->ring_half;
    vk->f.vkResetDescriptorPool(vk->device, vk->desc_pool, 0);
    vk->last_set = VK_NULL_HANDLE;
}

/* An op fills a half of a ring smaller than the configured one: what is recorded runs and is waited
 * for (read-backs copied out), then the ring is replaced by one of the configured size and
 * recording goes on. When that allocation fails the small ring stays (and is used in turns). */
static pkv_status ring_grow(pkv_vk *vk)
{
    pkv_status s = pkv_vk_submit_wait(vk);
    if (s != PKV_OK) return s;
    const double tg = pkv_prof_start();
    const VkDeviceSize from = vk->ring_size;
    if (ring_make(vk, vk->ring_target) != VK_SUCCESS) vk->ring_target = vk->ring_size; /* no more tries */
    vk->last_set = VK_NULL_HANDLE; /* a set of this op may name the old ring */
    if (tg > 0 && vk->ring_size != from)
        fprintf(stderr, "pkv profile: vulkan staging ring grown from %llu to %llu KiB in %.3f ms\n",
                (unsigned long long)(from >> 10), (unsigned long long)(vk->ring_size >> 10), (pkv_prof_start() - tg) * 1e3);
    return pkv_vk_begin(vk);
}

/* Room in the ring: turns to the other half first when this one is full (order is kept). */
static pkv_status ring_take(pkv_vk *vk, size_t want, VkDeviceSize *off, size_t *got)
{
    return pkv_vk_ring_take(vk, want, 1, off, got);
}

pkv_status pkv_vk_ring_take(pkv_vk *vk, size_t want, size_t unit, VkDeviceSize *off, size_t *got)
{
    if (vk->external) /* the ring is reused by the next call, before the application submits */
        return pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "vulkan: a recorded call cannot take host data through the staging ring");
    VkDeviceSize end = ((VkDeviceSize)vk->cur + 1) * vk->ring_half;
    if (vk->ring_used + (unit > 16 ? unit : 16) > end) {
        pkv_status s = vk->ring_size < vk->ring_target ? ring_grow(vk) : ring_turn(vk);
        if (s != PKV_OK) return s;
        end = ((VkDeviceSize)vk->cur + 1) * vk->ring_half;
    }
    size_t room = (size_t)(end - vk->ring_used);
    *got = want < room ? want : room;
    *got -= *got % unit;
    *off = vk->ring_used;
    vk->ring_used = (vk->ring_used + *got + 15) & ~(VkDeviceSize)15;
    return PKV_OK;
}

uint32_t *pkv_vk_host_table(pkv_vk *vk, size_t words)
{
    if (words > vk->cap_host_tab) {
        size_t cap = vk->cap_host_tab ? vk->cap_host_tab : 256;
        while (cap < words) cap *= 2;
        uint32_t *t = realloc(vk->host_tab, cap * sizeof *t);
        if (!t) return NULL;
        vk->host_tab = t, vk->cap_host_tab = cap;
    }
    return vk->host_tab;
}

pkv_status pkv_vk_regions_reserve(pkv_vk *vk, uint32_t n)
{
    if (n <= vk->cap_regions) return PKV_OK;
    uint32_t cap = vk->cap_regions ? vk->cap_regions : 256;
    while (cap < n) cap *= 2;
    VkBufferCopy *r = realloc(vk->regions, cap * sizeof *r);
    if (!r) return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "vulkan: out of host memory");
    vk->regions = r;
    vk->cap_regions = cap;
    return PKV_OK;
}

/* Recorded calls: the data goes into the command buffer itself (vkCmdUpdateBuffer, 64 KiB per
 * command, whole words: the ops' scratch sections are word-aligned and padded). */
static pkv_status upload_inline(pkv_vk *vk, VkBuffer dst, VkDeviceSize off, const uint8_t *p, size_t bytes)
{
    if (off % 4) return pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "vulkan: a recorded upload at an unaligned offset");
    uint32_t tail[16384];
    while (bytes) {
        size_t n = bytes < 65536 ? bytes : 65536;
        if (n % 4) { /* the last words: padded */
            memset(tail, 0, sizeof tail);
            memcpy(tail, p, n);
            vk->f.vkCmdUpdateBuffer(vk->cb, dst, off, (n + 3) & ~(size_t)3, tail);
        } else {
            vk->f.vkCmdUpdateBuffer(vk->cb, dst, off, n, p);
        }
        p += n, off += n, bytes -= n;
    }
    return PKV_OK;
}

pkv_status pkv_vk_upload_raw(pkv_vk *vk, VkBuffer dst, VkDeviceSize off, const void *src, size_t bytes)
{
    if (vk->external) {
        pkv_vk_close_open(vk);
        return upload_inline(vk, dst, off, src, bytes);
    }
    pkv_status s = pkv_vk_begin(vk);
    const uint8_t *p = src;
    while (s == PKV_OK && bytes) {
        VkDeviceSize roff = 0;
        size_t n = 0;
        s = ring_take(vk, bytes, &roff, &n);
        if (s != PKV_OK) break;
        const double tc = pkv_prof_start();
        pkv_parallel_memcpy(vk->ring_map + roff, p, n);
        pkv_prof_add(PKV_PROF_STAGE, tc);
        VkBufferCopy c = {.srcOffset = roff, .dstOffset = off, .size = n};
        vk->f.vkCmdCopyBuffer(vk->cb, vk->ring_buf, dst, 1, &c);
        p += n, off += n, bytes -= n;
    }
    return s;
}

pkv_status pkv_vk_download_raw(pkv_vk *vk, VkBuffer src, VkDeviceSize off, void *dst, size_t bytes)
{
    pkv_status s = pkv_vk_begin(vk);
    uint8_t *p = dst;
    while (s == PKV_OK && bytes) {
        VkDeviceSize roff = 0;
        size_t n = 0;
        s = ring_take(vk, bytes, &roff, &n);
        if (s != PKV_OK) break;
        if (vk->n_pending == vk->cap_pending) {
            uint32_t cap = vk->cap_pending ? vk->cap_pending * 2 : 16;
            pkv_vk_pending_read *np = realloc(vk->pending, cap * sizeof *np);
            if (!np) return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "vulkan: out of host memory");
            vk->pending = np;
            vk->cap_pending = cap;
        }
        VkBufferCopy c = {.srcOffset = off, .dstOffset = roff, .size = n};
        vk->f.vkCmdCopyBuffer(vk->cb, src, vk->ring_buf, 1, &c);
        vk->pending[vk->n_pending++] = (pkv_vk_pending_read){roff, p, n};
        p += n, off += n, bytes -= n;
    }
    return s;
}

pkv_status pkv_vk_upload(pkv_vk *vk, pkv_buf *dst, VkDeviceSize off, const void *src, size_t bytes)
{
    return pkv_vk_upload_raw(vk, dst->page->buf, dst->off + off, src, bytes);
}

pkv_status pkv_vk_download(pkv_vk *vk, pkv_buf *src, VkDeviceSize off, void *dst, size_t bytes)
{
    return pkv_vk_download_raw(vk, src->page->buf, src->off + off, dst, bytes);
}
