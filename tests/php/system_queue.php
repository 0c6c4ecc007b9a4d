<?php
// Drupal's database queue as a Drupal site runs it, on PDO, for bridge's tests.
//
// Written from the behaviour of Drupal 7's SystemQueue (the seed) and of
// DatabaseQueue in Drupal 10/11 (../shared/reference/drupal-queue.md): the
// same statements, in the same order, with the same compare-and-set claim
// (UPDATE ... WHERE item_id = :id AND expire = 0) and the same clock
// (PHP's time(), whole seconds). Nothing of bridge is used here.
//
// Usage: php system_queue.php COMMAND QUEUE [ARG...]
// The database comes from the environment: BRIDGE_PHP_DSN (a PDO DSN),
// BRIDGE_PHP_USER, BRIDGE_PHP_PASSWORD, BRIDGE_PHP_TABLE (default queue).
// Output is one line per result, so the Python side reads it simply.

class SystemQueue {
  private $name;
  private $db;
  private $table;

  public function __construct($name, PDO $db, $table) {
    $this->name = $name;
    $this->db = $db;
    $this->table = $table;
  }

  public function createItem($data) {
    $insert = $this->db->prepare(
      "INSERT INTO {$this->table} (name, data, created) VALUES (:name, :data, :created)");
    $insert->bindValue(':name', $this->name);
    // A blob column: bound as a LOB, so that any bytes go in unchanged.
    $insert->bindValue(':data', serialize($data), PDO::PARAM_LOB);
    // Not the request time: a long request may create many items.
    $insert->bindValue(':created', time(), PDO::PARAM_INT);
    $insert->execute();
    return $this->db->lastInsertId($this->db->getAttribute(PDO::ATTR_DRIVER_NAME) === 'pgsql'
      ? "{$this->table}_item_id_seq" : NULL);
  }

  public function numberOfItems() {
    $count = $this->db->prepare("SELECT COUNT(item_id) FROM {$this->table} WHERE name = :name");
    $count->execute([':name' => $this->name]);
    return (int) $count->fetchColumn();
  }

  public function claimItem($lease_time = 30) {
    // Loop until a claim succeeds or nothing is left: another consumer may
    // win the race for the row between the SELECT and the UPDATE.
    while (TRUE) {
      $select = $this->db->prepare(
        "SELECT data, created, item_id FROM {$this->table} WHERE expire = 0 AND name = :name " .
        "ORDER BY created, item_id LIMIT 1");
      $select->execute([':name' => $this->name]);
      $item = $select->fetchObject();
      // Ends the read: on SQLite an open SELECT keeps its snapshot, and the
      // UPDATE would then fail at once ("database is locked") instead of
      // waiting, whenever another process wrote in between.
      $select->closeCursor();
      if (!$item) {
        return FALSE;
      }
      $update = $this->db->prepare(
        "UPDATE {$this->table} SET expire = :expire WHERE item_id = :id AND expire = 0");
      $update->execute([':expire' => time() + $lease_time, ':id' => $item->item_id]);
      if ($update->rowCount()) {
        $data = is_resource($item->data) ? stream_get_contents($item->data) : $item->data;
        $item->data = unserialize($data, ['allowed_classes' => FALSE]);
        return $item;
      }
    }
  }

  public function releaseItem($item) {
    $update = $this->db->prepare("UPDATE {$this->table} SET expire = 0 WHERE item_id = :id");
    $update->execute([':id' => $item->item_id]);
    return (bool) $update->rowCount();
  }

  public function deleteItem($item) {
    $delete = $this->db->prepare("DELETE FROM {$this->table} WHERE item_id = :id");
    $delete->execute([':id' => $item->item_id]);
  }

  public function garbageCollection() {
    // Table-wide, as Drupal's: every queue's ended leases go back to 0.
    $reset = $this->db->prepare(
      "UPDATE {$this->table} SET expire = 0 WHERE expire <> 0 AND expire < :now");
    $reset->execute([':now' => time()]);
  }
}

// Values a Drupal site might queue, each one PHP type the codec maps.
function samples() {
  return [
    NULL, TRUE, FALSE, 0, -7, PHP_INT_MAX, PHP_INT_MIN, 0.1, -2.5, 1.0e25, 3.0, INF,
    '', 'plain', "h\u{e9}llo \u{1F600}", "\xff\xfe binary", "with \"quotes\";\n and a NUL \0",
    [], [1, 2, 3], ['a' => 1, 'b' => [TRUE, NULL]], [5 => 'five', 9 => 'nine'],
    [1 => 'starts at one'], ['nid' => 42, 'langcode' => 'en', 'tags' => ['x', 'y']],
    ['nested' => ['deeper' => ['deepest' => [0.5]]]], [-1 => 'negative key'],
  ];
}

$options = [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION];
$db = new PDO(getenv('BRIDGE_PHP_DSN'), getenv('BRIDGE_PHP_USER') ?: NULL,
  getenv('BRIDGE_PHP_PASSWORD') ?: NULL, $options);
if ($db->getAttribute(PDO::ATTR_DRIVER_NAME) === 'sqlite') {
  $db->exec('PRAGMA busy_timeout = 30000');
}
$queue = new SystemQueue($argv[2], $db, getenv('BRIDGE_PHP_TABLE') ?: 'queue');
$command = $argv[1];

if ($command === 'create-samples') {
  foreach (samples() as $value) {
    print $queue->createItem($value) . "\n";
  }
}
elseif ($command === 'create-serialized') {
  // Items whose data is given serialized (base64), one per argument.
  foreach (array_slice($argv, 3) as $encoded) {
    print $queue->createItem(unserialize(base64_decode($encoded), ['allowed_classes' => FALSE])) . "\n";
  }
}
elseif ($command === 'reserialize') {
  // No queue: each argument (base64) through unserialize() and serialize(),
  // to show PHP reads what bridge's codec writes as the same value.
  foreach (array_slice($argv, 3) as $encoded) {
    $value = unserialize(base64_decode($encoded), ['allowed_classes' => FALSE]);
    print base64_encode(serialize($value)) . "\n";
  }
}
elseif ($command === 'create-object') {
  print $queue->createItem((object) ['nid' => 1]) . "\n";
}
elseif ($command === 'claim') {
  // Claim, print the id and the data as PHP re-serializes it, then settle.
  $item = $queue->claimItem((int) $argv[3]);
  if ($item === FALSE) {
    print "none\n";
  }
  else {
    print $item->item_id . ' ' . base64_encode(serialize($item->data)) . "\n";
    if (($argv[4] ?? 'delete') === 'delete') {
      $queue->deleteItem($item);
    }
    elseif ($argv[4] === 'release') {
      $queue->releaseItem($item);
    }
  }
}
elseif ($command === 'drain') {
  // Claim and delete until the queue is empty; one id a line.
  while ($item = $queue->claimItem((int) $argv[3])) {
    print $item->item_id . "\n";
    $queue->deleteItem($item);
  }
}
elseif ($command === 'count') {
  print $queue->numberOfItems() . "\n";
}
elseif ($command === 'gc') {
  $queue->garbageCollection();
}
else {
  fwrite(STDERR, "unknown command $command\n");
  exit(2);
}
