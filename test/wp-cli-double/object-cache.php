<?php
/**
 * Plugin Name: wpcp Redis object cache stand-in (WPCP_REDIS_STANDIN_DROPIN)
 * Description: Installed by the wpcp WP-CLI TEST DOUBLE's `wp redis enable` in place of the Redis
 *              Object Cache plugin's drop-in. Not for production.
 *
 * A small persistent object cache on Redis through the phpredis extension, honouring the plugin's
 * settings: WP_REDIS_PREFIX (keys are `<prefix><blog prefix>:<group>:<key>`), WP_REDIS_HOST,
 * WP_REDIS_PORT, WP_REDIS_SCHEME = unix with WP_REDIS_PATH, WP_REDIS_DATABASE, WP_REDIS_TIMEOUT,
 * WP_REDIS_DISABLED, and WP_REDIS_SELECTIVE_FLUSH (wp_cache_flush() deletes only keys under the
 * prefix instead of running FLUSHDB). Values are stored PHP-serialized. When Redis cannot be
 * reached it falls back to a per-request cache, as the plugin does.
 */

defined('ABSPATH') || exit;

if (defined('WP_REDIS_DISABLED') && WP_REDIS_DISABLED) {
    return;
}

function wp_cache_init()
{
    $GLOBALS['wp_object_cache'] = new WP_Object_Cache();
}

function wp_cache_add($key, $data, $group = '', $expire = 0)
{
    return $GLOBALS['wp_object_cache']->add($key, $data, $group, (int) $expire);
}

function wp_cache_add_multiple(array $data, $group = '', $expire = 0)
{
    $out = [];
    foreach ($data as $key => $value) {
        $out[$key] = wp_cache_add($key, $value, $group, $expire);
    }
    return $out;
}

function wp_cache_replace($key, $data, $group = '', $expire = 0)
{
    return $GLOBALS['wp_object_cache']->replace($key, $data, $group, (int) $expire);
}

function wp_cache_set($key, $data, $group = '', $expire = 0)
{
    return $GLOBALS['wp_object_cache']->set($key, $data, $group, (int) $expire);
}

function wp_cache_set_multiple(array $data, $group = '', $expire = 0)
{
    $out = [];
    foreach ($data as $key => $value) {
        $out[$key] = wp_cache_set($key, $value, $group, $expire);
    }
    return $out;
}

function wp_cache_get($key, $group = '', $force = false, &$found = null)
{
    return $GLOBALS['wp_object_cache']->get($key, $group, $force, $found);
}

function wp_cache_get_multiple($keys, $group = '', $force = false)
{
    $out = [];
    foreach ($keys as $key) {
        $out[$key] = wp_cache_get($key, $group, $force);
    }
    return $out;
}

function wp_cache_delete($key, $group = '')
{
    return $GLOBALS['wp_object_cache']->delete($key, $group);
}

function wp_cache_delete_multiple(array $keys, $group = '')
{
    $out = [];
    foreach ($keys as $key) {
        $out[$key] = wp_cache_delete($key, $group);
    }
    return $out;
}

function wp_cache_incr($key, $offset = 1, $group = '')
{
    return $GLOBALS['wp_object_cache']->incr($key, (int) $offset, $group);
}

function wp_cache_decr($key, $offset = 1, $group = '')
{
    return $GLOBALS['wp_object_cache']->incr($key, -(int) $offset, $group);
}

function wp_cache_flush()
{
    return $GLOBALS['wp_object_cache']->flush();
}

function wp_cache_flush_runtime()
{
    return $GLOBALS['wp_object_cache']->flush_runtime();
}

function wp_cache_flush_group($group)
{
    return $GLOBALS['wp_object_cache']->flush_group($group);
}

function wp_cache_supports($feature)
{
    return in_array($feature, ['add_multiple', 'set_multiple', 'get_multiple', 'delete_multiple', 'flush_runtime', 'flush_group'], true);
}

function wp_cache_close()
{
    return true;
}

function wp_cache_add_global_groups($groups)
{
    $GLOBALS['wp_object_cache']->add_global_groups($groups);
}

function wp_cache_add_non_persistent_groups($groups)
{
    $GLOBALS['wp_object_cache']->add_non_persistent_groups($groups);
}

function wp_cache_switch_to_blog($blog_id)
{
    $GLOBALS['wp_object_cache']->switch_to_blog((int) $blog_id);
}

function wp_cache_reset()
{
    $GLOBALS['wp_object_cache']->flush_runtime();
}

class WP_Object_Cache
{
    /** Marks this drop-in for the test double's `wp cache type` and `wp redis status`. */
    public $wpcpd_redis_standin = true;
    public $redis_connected = false;
    public $errors = [];
    public $global_prefix = '';
    public $blog_prefix = '';
    public $cache_hits = 0;
    public $cache_misses = 0;

    private $redis = null;
    private $cache = [];
    private $global_groups = [];
    private $ignored_groups = [];
    private $prefix = '';

    public function __construct()
    {
        global $table_prefix, $blog_id;
        $this->prefix = defined('WP_REDIS_PREFIX') ? trim((string) WP_REDIS_PREFIX) : '';
        $multisite = function_exists('is_multisite') && is_multisite();
        $this->global_prefix = $multisite ? '' : (string) $table_prefix;
        $this->blog_prefix = $multisite ? (string) (int) $blog_id : (string) $table_prefix;
        if (!class_exists('Redis')) {
            $this->errors[] = 'The phpredis extension is not loaded.';
            return;
        }
        try {
            $redis = new Redis();
            $timeout = defined('WP_REDIS_TIMEOUT') ? (float) WP_REDIS_TIMEOUT : 1.0;
            if (defined('WP_REDIS_SCHEME') && WP_REDIS_SCHEME === 'unix') {
                $redis->connect((string) WP_REDIS_PATH, 0, $timeout);
            } else {
                $host = defined('WP_REDIS_HOST') ? (string) WP_REDIS_HOST : '127.0.0.1';
                $port = defined('WP_REDIS_PORT') ? (int) WP_REDIS_PORT : 6379;
                $redis->connect($host, $port, $timeout);
            }
            if (defined('WP_REDIS_PASSWORD') && WP_REDIS_PASSWORD) {
                $redis->auth(WP_REDIS_PASSWORD);
            }
            if (defined('WP_REDIS_DATABASE')) {
                $redis->select((int) WP_REDIS_DATABASE);
            }
            $this->redis = $redis;
            $this->redis_connected = true;
        } catch (Throwable $e) {
            $this->errors[] = $e->getMessage();
        }
    }

    public function ping()
    {
        return $this->redis_connected ? $this->redis->ping() : false;
    }

    public function redis_version()
    {
        if (!$this->redis_connected) {
            return null;
        }
        $info = $this->redis->info('server');
        return $info['redis_version'] ?? null;
    }

    public function add_global_groups($groups)
    {
        foreach ((array) $groups as $group) {
            $this->global_groups[$group] = true;
        }
    }

    public function add_non_persistent_groups($groups)
    {
        foreach ((array) $groups as $group) {
            $this->ignored_groups[$group] = true;
        }
    }

    public function switch_to_blog($blog_id)
    {
        if (function_exists('is_multisite') && is_multisite()) {
            $this->blog_prefix = (string) $blog_id;
        }
    }

    private function group($group)
    {
        return ($group === '' || $group === null) ? 'default' : (string) $group;
    }

    private function redis_key($key, $group)
    {
        $prefix = isset($this->global_groups[$group]) ? $this->global_prefix : $this->blog_prefix;
        return $this->prefix . $prefix . ':' . $group . ':' . $key;
    }

    private function persistent($group)
    {
        return $this->redis_connected && !isset($this->ignored_groups[$group]);
    }

    private function copy($data)
    {
        return is_object($data) ? clone $data : $data;
    }

    public function get($key, $group = 'default', $force = false, &$found = null)
    {
        $group = $this->group($group);
        $id = $this->redis_key($key, $group);
        if (!$force && array_key_exists($id, $this->cache)) {
            $found = true;
            $this->cache_hits++;
            return $this->copy($this->cache[$id]);
        }
        if ($this->persistent($group)) {
            $raw = $this->redis->get($id);
            if ($raw !== false) {
                $value = unserialize($raw);
                $this->cache[$id] = $value;
                $found = true;
                $this->cache_hits++;
                return $this->copy($value);
            }
        }
        $found = false;
        $this->cache_misses++;
        return false;
    }

    public function set($key, $data, $group = 'default', $expire = 0)
    {
        $group = $this->group($group);
        $id = $this->redis_key($key, $group);
        $this->cache[$id] = $this->copy($data);
        if ($this->persistent($group)) {
            $raw = serialize($data);
            return (bool) ($expire > 0 ? $this->redis->setex($id, $expire, $raw) : $this->redis->set($id, $raw));
        }
        return true;
    }

    private function exists($id, $group)
    {
        return array_key_exists($id, $this->cache) || ($this->persistent($group) && $this->redis->exists($id));
    }

    public function add($key, $data, $group = 'default', $expire = 0)
    {
        $group = $this->group($group);
        if (function_exists('wp_suspend_cache_addition') && wp_suspend_cache_addition()) {
            return false;
        }
        return $this->exists($this->redis_key($key, $group), $group) ? false : $this->set($key, $data, $group, $expire);
    }

    public function replace($key, $data, $group = 'default', $expire = 0)
    {
        $group = $this->group($group);
        return $this->exists($this->redis_key($key, $group), $group) ? $this->set($key, $data, $group, $expire) : false;
    }

    public function delete($key, $group = 'default')
    {
        $group = $this->group($group);
        $id = $this->redis_key($key, $group);
        $had = array_key_exists($id, $this->cache);
        unset($this->cache[$id]);
        if ($this->persistent($group)) {
            return $this->redis->del($id) > 0 || $had;
        }
        return $had;
    }

    public function incr($key, $offset = 1, $group = 'default')
    {
        $value = $this->get($key, $group);
        if ($value === false) {
            return false;
        }
        $value = max(0, (int) $value + $offset);
        $this->set($key, $value, $group);
        return $value;
    }

    public function flush_runtime()
    {
        $this->cache = [];
        return true;
    }

    /** Deletes the keys matching a pattern with SCAN + DEL (never KEYS, never FLUSHDB). */
    private function delete_matching($pattern)
    {
        $iterator = null;
        $this->redis->setOption(Redis::OPT_SCAN, Redis::SCAN_RETRY);
        while (($keys = $this->redis->scan($iterator, $pattern, 500)) !== false) {
            if ($keys) {
                $this->redis->del($keys);
            }
        }
    }

    public function flush()
    {
        $this->cache = [];
        if (!$this->redis_connected) {
            return true;
        }
        try {
            if (defined('WP_REDIS_SELECTIVE_FLUSH') && WP_REDIS_SELECTIVE_FLUSH && $this->prefix !== '') {
                $this->delete_matching(self::glob_escape($this->prefix) . '*');
            } else {
                $this->redis->flushDB();
            }
            return true;
        } catch (Throwable $e) {
            $this->errors[] = $e->getMessage();
            return false;
        }
    }

    public function flush_group($group)
    {
        $group = $this->group($group);
        foreach (array_keys($this->cache) as $id) {
            if (str_contains($id, ':' . $group . ':')) {
                unset($this->cache[$id]);
            }
        }
        if ($this->redis_connected) {
            $prefix = isset($this->global_groups[$group]) ? $this->global_prefix : $this->blog_prefix;
            $this->delete_matching(self::glob_escape($this->prefix . $prefix . ':' . $group . ':') . '*');
        }
        return true;
    }

    private static function glob_escape($value)
    {
        return preg_replace('/([*?\[\]\\\\])/', '\\\\$1', $value);
    }

    public function stats()
    {
        echo '<p><strong>Cache Hits:</strong> ' . (int) $this->cache_hits . '<br /><strong>Cache Misses:</strong> ' . (int) $this->cache_misses . '</p>';
    }
}
