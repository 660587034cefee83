CREATE DATABASE documents OWNER bookings;
