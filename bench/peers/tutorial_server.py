# tutorial_server.py -- the tutorial's TCP server, verbatim but for
# SO_REUSEADDR, the port argument, and one line announcing the bound port.
import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 1234

# 🌐 Create a TCP socket
server_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # TCP socket for server
server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

# 📍 Bind the socket to a specific address and port
server_address = ('localhost', port)  # Address and port for the server
server_socket.bind(server_address)
print(f"tutorial server on port {server_socket.getsockname()[1]}", flush=True)

# 👂 Listen for incoming connections
server_socket.listen(5)  # Allow up to 5 pending connections

while True:
    # 🤝 Accept a client connection
    client_socket, client_address = server_socket.accept()  # Wait for a client to connect

    # 📥 Receive data from the client
    data = client_socket.recv(1024)  # Receive up to 1024 bytes of data

    # 📤 Send a response back to the client
    client_socket.send(b"Received: " + data)  # Send acknowledgment

    # ❌ Close the client socket
    client_socket.close()  # End communication with the client
